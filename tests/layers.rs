//! The module graph points down: no cycle between top-level modules of `src/`, `host` at the bottom knowing no
//! other module, and nothing below the commands naming the command line. Read from the source, so a `use` that
//! points up fails here before it lands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module → the other top-level modules its code names as `crate::<module>` (comments skipped).
fn graph(src: &Path) -> Graph {
    let mut g = Graph::new();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut deps = BTreeSet::new();
        let files: Vec<std::path::PathBuf> = match path.is_dir() {
            true => crate::util::tree(&path).into_iter().filter(|f| f.ends_with(".rs")).map(|f| path.join(f)).collect(),
            false => vec![path.clone()],
        };
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + 7..];
                    let m: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if !m.is_empty() && m != name {
                        deps.insert(m);
                    }
                }
            }
        }
        g.insert(name, deps);
    }
    g
}

/// A cycle, as the path of modules that closes it, if there is one.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, n: &str, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_cycle_between_top_level_modules() {
    let g = graph(&src());
    assert!(g.len() > 20 && g["commands"].contains("join"), "the source was not read: {g:?}");
    if let Some(c) = cycle(&g) {
        panic!("modules must point down, but {} import each other in a cycle", c.join(" → "));
    }
}

/// The modules in the order lib.rs lists them.
fn listed(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_string)).collect()
}

#[test]
fn every_module_names_only_modules_lib_lists_before_it() {
    let (g, order) = (graph(&src()), listed(&src()));
    assert_eq!(
        order.iter().cloned().collect::<BTreeSet<_>>(),
        g.keys().cloned().collect(),
        "lib.rs lists every module"
    );
    for (i, module) in order.iter().enumerate() {
        let later: Vec<&String> = g[module].iter().filter(|d| order[i..].contains(d)).collect();
        assert!(later.is_empty(), "{module} names {later:?}, listed after it in lib.rs: the layers point down");
    }
}

#[test]
fn host_is_the_bottom_and_only_commands_know_the_command_line() {
    let g = graph(&src());
    assert_eq!(g["host"], BTreeSet::new(), "host/ must know no other module of wkjoin");
    for (module, deps) in &g {
        if module != "commands" && module != "cli" {
            assert!(!deps.contains("cli") && !deps.contains("commands"), "{module} names the command line: {deps:?}");
        }
        if module != "commands" {
            assert!(!deps.contains("join"), "{module} points up at join: {deps:?}");
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges = [("plan", "routes"), ("routes", "settings"), ("settings", "plan"), ("host", "")];
    let mut g = Graph::new();
    for (a, b) in edges {
        let e = g.entry(a.to_string()).or_default();
        if !b.is_empty() {
            e.insert(b.to_string());
        }
    }
    assert_eq!(cycle(&g).unwrap(), ["plan", "routes", "settings", "plan"]);
    g.get_mut("settings").unwrap().clear();
    assert_eq!(cycle(&g), None);
}
