//! The documents stay true to the tree: README.md is short, every relative link in README.md and
//! `docs/*.md` resolves, and the architecture page names every folder and file of
//! `fmnist-kit/src`, every path it names exists, and every type or function of the kit it names is defined.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.push(p.clone());
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The Markdown pages: README.md, docs/*.md and notebooks/src/README.md.
fn pages() -> Vec<PathBuf> {
    let root = repo();
    let mut pages = vec![root.join("README.md"), root.join("notebooks/src/README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    pages
}

/// The targets of `[text](target)` links in `text`, without `#anchors`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// The text between backticks in `text`.
fn code_spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        for (i, p) in parts.iter().enumerate() {
            if i % 2 == 1 {
                out.push(p.to_string());
            }
        }
    }
    out
}

#[test]
fn the_readme_is_short_and_every_relative_link_resolves() {
    let root = repo();
    let readme = read(&root.join("README.md"));
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines (at most 250)");
    let mut checked = 0;
    for page in pages() {
        for target in links(&read(&page)) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let resolved = page.parent().unwrap().join(path);
            assert!(
                resolved.exists(),
                "{}: the link {target} points at nothing",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} links found");
}

#[test]
fn the_architecture_page_names_every_folder_and_only_what_exists() {
    let root = repo();
    let src = root.join("fmnist-kit/src");
    let page = read(&root.join("docs/architecture.md"));
    let spans = code_spans(&page);
    let mut tree = Vec::new();
    walk(&src, &mut tree);
    // Every folder of the crate, by its path under src/ with a trailing slash.
    for dir in tree.iter().filter(|p| p.is_dir()) {
        let rel = format!("{}/", dir.strip_prefix(&src).unwrap().display());
        assert!(
            spans.iter().any(|s| s == &rel),
            "docs/architecture.md does not name the folder `{rel}`"
        );
    }
    // Every source file, by its name (a folder's mod.rs, lib.rs and test files aside).
    for file in tree
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if ["mod.rs", "lib.rs", "tests.rs"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            spans
                .iter()
                .any(|s| s == &name || s.ends_with(&format!("/{name}"))),
            "docs/architecture.md does not name the file `{name}` ({})",
            file.display()
        );
    }
    // Every path it names exists: from the repository root, from src/, or (a bare file name)
    // somewhere in the crate or the repository's top folders.
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut everything = tree.clone();
    for top in [
        "notebooks",
        "tests",
        "scripts",
        "data",
        "docs",
        "fmnist-kit/tests",
    ] {
        walk(&root.join(top), &mut everything);
    }
    for p in &everything {
        if let Some(n) = p.file_name() {
            files.insert(n.to_string_lossy().into_owned());
        }
    }
    let is_path = |s: &str| {
        !s.contains(' ')
            && !s.contains('<')
            && !s.contains("NN")
            && (s.contains('/')
                || [".rs", ".md", ".py", ".sh", ".ipynb", ".gz"]
                    .iter()
                    .any(|e| s.ends_with(e)))
    };
    let mut named = 0;
    for s in spans.iter().filter(|s| is_path(s)) {
        let s = s.trim_end_matches('/');
        let found = root.join(s).exists()
            || src.join(s).exists()
            || (!s.contains('/') && files.contains(s))
            || (s == "data/data.tar.gz"); // built by `make`, not committed
        assert!(
            found,
            "docs/architecture.md names `{s}`, which does not exist"
        );
        named += 1;
    }
    assert!(named > 40, "only {named} paths named");
    // Every CamelCase type and every `Type::function` it names is defined in the crate.
    let mut code = String::new();
    for p in tree
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        code.push_str(&read(p));
    }
    for s in &spans {
        let (ty, func) = match s.split_once("::") {
            Some((t, f)) => (t, Some(f.split('(').next().unwrap_or(f))),
            None => (s.as_str(), None),
        };
        let camel = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && ty.chars().all(|c| c.is_ascii_alphanumeric())
            && ty.chars().any(|c| c.is_ascii_lowercase());
        if !camel || ["Makefile", "Ok", "Err", "Some", "None", "Result"].contains(&ty) {
            continue;
        }
        let defined = ["struct", "enum", "trait", "type"]
            .iter()
            .any(|k| code.contains(&format!("{k} {ty}")));
        assert!(
            defined,
            "docs/architecture.md names `{ty}`, which the crate does not define"
        );
        if let Some(f) = func.filter(|f| f.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
            assert!(
                code.contains(&format!("fn {f}")),
                "docs/architecture.md names `{s}`, but no `fn {f}` exists"
            );
        }
    }
}
