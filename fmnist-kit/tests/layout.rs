//! The crate's layout rules (issue "Structure"): no source file over 800 lines, and no import
//! loop between the top-level modules of `src/` (read from the `crate::…` paths in the code,
//! comments and test modules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

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

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named by `crate::x` paths and `use crate::{x, y::z}` groups.
fn dependencies(code: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            // Each item of the group at nesting depth 0 starts with a module name.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for ch in group[..end].chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && item_start {
                    if ch.is_alphanumeric() || ch == '_' {
                        name.push(ch);
                    } else if !name.is_empty() {
                        deps.insert(std::mem::take(&mut name));
                        item_start = false;
                    }
                }
            }
            if !name.is_empty() {
                deps.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            deps.insert(name);
        }
    }
    deps
}

#[test]
fn no_file_is_too_long_and_no_module_sits_in_an_import_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (stem != "lib" && stem != "bin").then_some(stem)
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines (at most {MAX_LINES})",
            f.display()
        );
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if !modules.contains(&top) {
            continue; // lib.rs, the binary
        }
        let deps = dependencies(&code(&text));
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(
            deps.into_iter()
                .filter(|d| d != &top && modules.contains(d)),
        );
    }
    assert!(graph.len() >= 10, "modules found: {:?}", graph.keys());
    // Depth-first search for a cycle; report the first one found.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import loop: {}\ngraph: {graph:#?}", cycle.join(" -> "));
        }
    }
    // The walkthrough's layering, spot-checked: training knows nothing of profiles or figures,
    // metrics nothing of figures.
    for (module, forbidden) in [("train", "profile"), ("train", "viz"), ("metrics", "viz")] {
        assert!(
            !graph[module].contains(forbidden),
            "{module} must not use {forbidden}"
        );
    }
}

#[test]
fn the_dependency_reader_sees_groups_and_paths() {
    let d = dependencies("use crate::{data::{self, X}, error::Result};\nlet x = crate::viz::f();");
    assert_eq!(
        d.into_iter().collect::<Vec<_>>(),
        vec!["data", "error", "viz"]
    );
}
