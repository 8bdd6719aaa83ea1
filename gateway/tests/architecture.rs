//! The shape the gateway's code keeps: its top-level modules depend on each other
//! one way only (no cycle), no source file outgrows 700 lines (tests aside), and
//! the tools' dependencies stay out of the service library.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without its unit tests: test-only files are left out whole,
/// and a trailing `#[cfg(test)] mod tests { … }` is cut off.
fn code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name == "testing.rs" || name == "memory.rs" {
        return None;
    }
    let text = std::fs::read_to_string(path).expect("source file");
    Some(match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => text[..i].to_string(),
        None => text,
    })
}

/// The top-level module a file belongs to (`s3` for `src/s3/object.rs`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let m = first.strip_suffix(".rs").unwrap_or(first);
    (m != "lib").then(|| m.to_string())
}

/// `crate::x` paths in `code`, comments left out.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group.split('}').next().unwrap_or_default().split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let n: String = n.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

#[test]
fn modules_depend_on_each_other_without_cycles() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files(&src()) {
        let (Some(m), Some(code)) = (module_of(&f), code(&f)) else { continue };
        let deps = graph.entry(m.clone()).or_default();
        deps.extend(crate_references(&code).into_iter().filter(|d| *d != m));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    assert!(graph.contains_key("pipeline") && graph["s3"].contains("pipeline"), "the scan sees the modules: {graph:?}");
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m);
        for d in &graph[m] {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_source_file_outgrows_700_lines() {
    let long: Vec<String> = files(&src())
        .into_iter()
        .filter_map(|f| {
            let lines = code(&f)?.lines().count();
            (lines > 700).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

#[test]
fn the_tools_dependencies_stay_out_of_the_service_library() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("manifest");
    for tool in ["anyhow", "plotters", "indicatif", "clap", "reed-solomon-erasure"] {
        assert!(
            !manifest
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{tool} "))
                    || l.trim_start().starts_with(&format!("{tool}."))),
            "{tool} belongs to the tools crate, not the service library"
        );
    }
}
