//! The crate's layout rules: no source file over 600 lines, and no import circle between the
//! files of `src/` at any depth. Files are the nodes; every `crate::`, `super::` and `self::`
//! path in a file's code (comments and test modules left out) is an edge to the file that
//! defines what it names, followed through re-exports (`pub use`); `mod` lines and the
//! re-exports themselves are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// A module path (`["train", "trainer"]`) and the file that holds it.
type Module = Vec<String>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `file` in the crate whose root folder is `root` (`lib.rs`/`main.rs` and
/// `mod.rs` name their folder).
fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statements of `code` that are re-exports (`pub use …;`, `pub(crate) use …;`), and the
/// code without them and without `mod` lines.
fn split_reexports(code: &str) -> (Vec<String>, String) {
    let mut reexports = Vec::new();
    let mut rest = String::new();
    let mut statement = String::new();
    let mut in_reexport = false;
    for line in code.lines() {
        let t = line.trim_start();
        if !in_reexport && (t.starts_with("pub use ") || t.starts_with("pub(crate) use ")) {
            in_reexport = true;
        }
        if in_reexport {
            statement.push_str(line);
            statement.push('\n');
            if t.ends_with(';') {
                reexports.push(std::mem::take(&mut statement));
                in_reexport = false;
            }
            continue;
        }
        let is_mod = ["mod ", "pub mod ", "pub(crate) mod "]
            .iter()
            .any(|m| t.starts_with(m) && t.ends_with(';'));
        if !is_mod {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (reexports, rest)
}

/// Every path of a use tree or expression starting at `s` (after `crate::`, `super::` or
/// `self::`), expanded: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn paths_at(s: &str) -> Vec<Vec<String>> {
    fn tree(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
        let mut prefix = Vec::new();
        loop {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == '{' {
                *i += 1;
                let mut out = Vec::new();
                loop {
                    while *i < s.len() && (s[*i].is_whitespace() || s[*i] == ',') {
                        *i += 1;
                    }
                    if *i >= s.len() || s[*i] == '}' {
                        *i += 1;
                        break;
                    }
                    for p in tree(s, i) {
                        let mut full = prefix.clone();
                        full.extend(p);
                        out.push(full);
                    }
                }
                return out;
            }
            let start = *i;
            while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_' || s[*i] == '*') {
                *i += 1;
            }
            let name: String = s[start..*i].iter().collect();
            if name.is_empty() {
                return vec![prefix];
            }
            prefix.push(name);
            if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
                *i += 2;
            } else {
                // Skip `as alias` in use trees.
                return vec![prefix];
            }
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    tree(&chars, &mut i)
}

/// Absolute paths (from the crate root) named in `code` of module `here`, whose child modules
/// are `children` (a path may start with one of them: `csv::parse`).
fn absolute_paths(code: &str, here: &Module, children: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut anchors: Vec<(String, Module)> = vec![
        ("crate::".into(), Vec::new()),
        (
            "super::".into(),
            here[..here.len().saturating_sub(1)].to_vec(),
        ),
        ("self::".into(), here.clone()),
    ];
    for c in children {
        let mut base = here.clone();
        base.push(c.clone());
        anchors.push((format!("{c}::"), base));
    }
    for (anchor, base) in anchors {
        let anchor = anchor.as_str();
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let before = rest[..i].chars().last();
            rest = &rest[i + anchor.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // e.g. `my_crate::`, or `a::csv::` for the child `csv`
            }
            for p in paths_at(rest) {
                let mut full = base.clone();
                // `super::super::x`
                let mut p = p.as_slice();
                while p.first().is_some_and(|s| s == "super") {
                    full.pop();
                    p = &p[1..];
                }
                full.extend(p.iter().cloned());
                out.push(full);
            }
        }
    }
    out
}

struct Crate {
    /// Module path → its file.
    files: BTreeMap<Module, PathBuf>,
    /// Module path → (name it re-exports → the absolute path it points at).
    reexports: BTreeMap<Module, BTreeMap<String, Vec<String>>>,
}

impl Crate {
    /// The file that defines what `path` names (following re-exports), if it is in the crate.
    fn resolve(&self, path: &[String], depth: usize) -> Option<Module> {
        let mut module: Module = Vec::new();
        for (k, seg) in path.iter().enumerate() {
            let mut next = module.clone();
            next.push(seg.clone());
            if self.files.contains_key(&next) {
                module = next;
                continue;
            }
            if let Some(target) = self.reexports.get(&module).and_then(|r| r.get(seg)) {
                if depth < 16 {
                    let mut full = target.clone();
                    full.extend(path[k + 1..].iter().cloned());
                    return self.resolve(&full, depth + 1);
                }
            }
            break;
        }
        self.files.contains_key(&module).then_some(module)
    }
}

/// The graph of one crate (root folder `root`, files `files`), and each file's line count.
fn graph_of(root: &Path, files: &[PathBuf]) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut krate = Crate {
        files: BTreeMap::new(),
        reexports: BTreeMap::new(),
    };
    let mut bodies = BTreeMap::new();
    for f in files {
        let m = module_of(root, f);
        let text = std::fs::read_to_string(f).unwrap();
        let (reexports, rest) = split_reexports(&code(&text));
        let mut names = BTreeMap::new();
        for r in &reexports {
            let after_use = &r[r.find("use ").unwrap() + 4..];
            let trimmed = after_use.trim_start();
            let (anchor_base, tail): (Module, &str) =
                if let Some(t) = trimmed.strip_prefix("crate::") {
                    (Vec::new(), t)
                } else if let Some(t) = trimmed.strip_prefix("super::") {
                    (m[..m.len().saturating_sub(1)].to_vec(), t)
                } else if let Some(t) = trimmed.strip_prefix("self::") {
                    (m.clone(), t)
                } else {
                    // `pub use child::{…}` is relative to this module.
                    (m.clone(), trimmed)
                };
            for p in paths_at(tail) {
                let Some(name) = p.last().cloned() else {
                    continue;
                };
                let mut full = anchor_base.clone();
                full.extend(p);
                names.insert(name, full);
            }
        }
        krate.reexports.insert(m.clone(), names);
        krate.files.insert(m.clone(), f.clone());
        bodies.insert(m, rest);
    }
    let mut graph = BTreeMap::new();
    for (m, body) in &bodies {
        let children: Vec<String> = krate
            .files
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .map(|k| k[m.len()].clone())
            .collect();
        let deps: BTreeSet<Module> = absolute_paths(body, m, &children)
            .iter()
            .filter_map(|p| krate.resolve(p, 0))
            .filter(|d| d != m)
            .collect();
        graph.insert(m.clone(), deps);
    }
    graph
}

/// The first circle found by a depth-first search, as a list of modules.
fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        n: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.clone());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.clone());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "<root>".into()
    } else {
        m.join("::")
    }
}

/// The library's files (without `bin/` and test-only `tests.rs` files) and the binary's.
fn crates() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    sources(&src, &mut all);
    let bin = src.join("bin").join("fmnist");
    let is_test = |p: &PathBuf| p.file_name().is_some_and(|n| n == "tests.rs");
    let lib: Vec<PathBuf> = all
        .iter()
        .filter(|p| !p.starts_with(src.join("bin")) && !is_test(p))
        .cloned()
        .collect();
    let binary: Vec<PathBuf> = all
        .iter()
        .filter(|p| p.starts_with(&bin) && !is_test(p))
        .cloned()
        .collect();
    vec![(src, lib), (bin, binary)]
}

#[test]
fn no_source_file_is_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 40, "{} files", files.len());
    for f in files {
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines (at most {MAX_LINES})",
            f.display()
        );
    }
}

#[test]
fn a_folders_mod_rs_only_declares_and_reexports() {
    let (_, files) = crates().remove(0);
    for f in files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "mod.rs"))
    {
        let (_, rest) = split_reexports(&code(&std::fs::read_to_string(f).unwrap()));
        let rest: Vec<&str> = rest
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            rest.is_empty(),
            "{} holds more than declarations and re-exports: {:?}",
            f.display(),
            &rest[..rest.len().min(3)]
        );
    }
}

#[test]
fn no_file_sits_in_an_import_circle() {
    for (root, files) in crates() {
        let graph = graph_of(&root, &files);
        assert!(graph.len() >= 6, "files found: {}", graph.len());
        if let Some(cycle) = find_cycle(&graph) {
            let text: Vec<String> = cycle.iter().map(name).collect();
            panic!("import circle in {}: {}", root.display(), text.join(" -> "));
        }
    }
}

/// The crate's rooms in layers (docs/architecture.md): a room uses only rooms of an earlier
/// layer.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["util", "display"],
    &["data", "tensorboard"],
    &["augment", "tsne"],
    &["models"],
    &["metrics"],
    &["train"],
    &["profile"],
    &["run"],
    &["transfer"],
    &["viz"],
    &["grid", "features"],
];

#[test]
fn each_room_uses_only_rooms_of_earlier_layers() {
    let (root, files) = crates().remove(0);
    let graph = graph_of(&root, &files);
    let layer_of = |room: &str| LAYERS.iter().position(|l| l.contains(&room));
    for (m, deps) in &graph {
        let Some(room) = m.first() else { continue }; // lib.rs
        let here = layer_of(room).unwrap_or_else(|| {
            panic!("the room {room} is in no layer: add it to LAYERS and docs/architecture.md")
        });
        for d in deps {
            let Some(other) = d.first().filter(|o| *o != room) else {
                continue;
            };
            let there = layer_of(other).unwrap_or(usize::MAX);
            assert!(
                there < here,
                "{} uses {}: {room} (layer {}) may use only rooms of earlier layers, and {other} is in layer {}",
                name(m),
                name(d),
                here + 1,
                there.saturating_add(1)
            );
        }
    }
}

#[test]
fn the_reader_follows_groups_relative_paths_and_reexports() {
    let here: Module = vec!["train".into(), "trainer".into()];
    let p = absolute_paths(
        "use crate::{data::{self, X}, error::Result};\nlet x = super::optim::f(); self::y::Z;\nuse resume::R; a::resume::S;",
        &here,
        &["resume".to_string()],
    );
    let p: Vec<String> = p.iter().map(|p| p.join("::")).collect();
    assert!(p.contains(&"data::self".to_string()), "{p:?}");
    assert!(p.contains(&"data::X".to_string()), "{p:?}");
    assert!(p.contains(&"error::Result".to_string()), "{p:?}");
    assert!(p.contains(&"train::optim::f".to_string()), "{p:?}");
    assert!(p.contains(&"train::trainer::y::Z".to_string()), "{p:?}");
    assert!(
        p.contains(&"train::trainer::resume::R".to_string()),
        "{p:?}"
    );
    assert!(
        !p.contains(&"train::trainer::resume::S".to_string()),
        "{p:?}"
    );
    let (re, rest) = split_reexports("mod a;\npub use a::{B,\n C};\nuse crate::x::Y;\n");
    assert_eq!(re.len(), 1);
    assert!(rest.contains("crate::x::Y") && !rest.contains("mod a"));
    // A circle through a re-export is found.
    let dir = std::env::temp_dir().join(format!("layout-{}", std::process::id()));
    let m = dir.join("m");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod m;\n").unwrap();
    std::fs::write(
        m.join("mod.rs"),
        "mod a;\nmod b;\npub use a::A;\npub use b::B;\n",
    )
    .unwrap();
    std::fs::write(m.join("a.rs"), "use crate::m::B;\npub struct A;\n").unwrap();
    std::fs::write(m.join("b.rs"), "use super::A;\npub struct B;\n").unwrap();
    // And one between a folder's mod.rs that calls its child and the child that uses it.
    let n = dir.join("n");
    std::fs::create_dir_all(&n).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod m;\nmod n;\n").unwrap();
    std::fs::write(
        n.join("mod.rs"),
        "mod c;\npub struct T;\nfn f() { c::g(); }\n",
    )
    .unwrap();
    std::fs::write(n.join("c.rs"), "use super::T;\npub fn g() {}\n").unwrap();
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let cycle = find_cycle(&graph_of(&dir, &files));
    std::fs::remove_dir_all(&dir).unwrap();
    let cycle: Vec<String> = cycle.expect("a circle").iter().map(name).collect();
    assert!(
        cycle.contains(&"m::a".into()) && cycle.contains(&"m::b".into()),
        "{cycle:?}"
    );
}
