//! Guard of the floor plan (docs/architecture.md): no import cycle between top-level modules.
//!
//! A small scanner of our own rather than `cargo modules dependencies --acyclic`: that tool
//! is not installed by `cargo xtask setup`, pins a rust-analyzer version and takes minutes on
//! this crate, and it cannot say which allowed cycles disappeared. This test reads
//! `guardian/src/**/*.rs` at test time, follows the `mod` declarations from `lib.rs` (so
//! `#[path]` test files sit in the right module), extracts every `crate::…`, `super::…`,
//! `self::…` and child-module path (in `use` trees and in expressions, comments and strings
//! stripped) and builds two graphs: one of top-level modules, one of files.
//!
//! `CYCLE_EDGES` is the allow-list of edges that still close a cycle today; removing them must
//! leave the top-level graph acyclic, and each of them must still close a cycle, so the list
//! only shrinks. The integrator empties it once every branch is merged.
//! `cargo test -p guardian --lib floors -- --nocapture` prints the graph and the file cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod lex;
mod scan;

use scan::{scan, Graph};

/// Edges `from → to` between top-level modules that close a cycle and are being removed.
/// Each is the edge that points up the floors of docs/architecture.md.
const CYCLE_EDGES: &[(&str, &str)] = &[];

/// The largest group of files that import each other (a strongly connected component of the
/// file graph): a module's `mod.rs` with at most two of its files. A larger knot is a
/// module whose children import their parent: move what they share into a leaf file.
const MAX_FILE_CYCLE: usize = 3;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Strongly connected components (Tarjan), each sorted, of more than one node.
pub(crate) fn cycles<N: Ord + Clone>(g: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct T<'a, N: Ord> {
        g: &'a BTreeMap<N, BTreeSet<N>>,
        idx: BTreeMap<&'a N, (usize, usize)>,
        stack: Vec<&'a N>,
        on: BTreeSet<&'a N>,
        out: Vec<Vec<N>>,
    }
    fn visit<'a, N: Ord + Clone>(t: &mut T<'a, N>, v: &'a N) {
        let n = t.idx.len();
        t.idx.insert(v, (n, n));
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            if !t.idx.contains_key(w) {
                visit(t, w);
                let low = t.idx[w].1.min(t.idx[v].1);
                t.idx.get_mut(v).expect("visited").1 = low;
            } else if t.on.contains(w) {
                let low = t.idx[w].0.min(t.idx[v].1);
                t.idx.get_mut(v).expect("visited").1 = low;
            }
        }
        if t.idx[v].0 == t.idx[v].1 {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        idx: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in g.keys() {
        if !t.idx.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// One shortest cycle through `start`, within `g`: the nodes in order.
fn one_cycle(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Vec<String> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in g.get(v).into_iter().flatten() {
            if w == start {
                let mut path = vec![v.to_string()];
                let mut at = v;
                while at != start {
                    at = prev[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return path;
            }
            if !prev.contains_key(w.as_str()) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut s = cycle.join(" → ") + " → " + &cycle[0] + "\n";
    for (i, from) in cycle.iter().enumerate() {
        let to = &cycle[(i + 1) % cycle.len()];
        let site = &graph.modules[&(from.clone(), to.clone())][0];
        s += &format!("    {from} → {to}: {}:{}\n", site.0.display(), site.1);
    }
    s
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = scan(&src()).expect("reading guardian/src");
    let adj = graph.module_adjacency();
    let mut report = String::from("top-level import graph (from → to: references):\n");
    for ((from, to), sites) in &graph.modules {
        report += &format!("  {from} → {to}: {}\n", sites.len());
    }
    println!("{report}");

    let allowed: BTreeSet<(String, String)> = CYCLE_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut failures = Vec::new();

    // Every allowed edge must still exist and still close a cycle, so the list only shrinks.
    let sccs = cycles(&adj);
    for (a, b) in &allowed {
        let in_cycle = sccs.iter().any(|c| c.contains(a) && c.contains(b));
        if !graph.modules.contains_key(&(a.clone(), b.clone())) || !in_cycle {
            failures.push(format!(
                "allow-listed edge {a} → {b} no longer closes a cycle: delete it from \
                 CYCLE_EDGES in guardian/src/floors/mod.rs\n"
            ));
        }
    }

    // Without the allowed edges, the graph must be acyclic.
    let mut rest = adj.clone();
    for (a, b) in &allowed {
        if let Some(s) = rest.get_mut(a) {
            s.remove(b);
        }
    }
    for scc in cycles(&rest) {
        let cycle = one_cycle(&rest, &scc[0]);
        failures.push(format!(
            "import cycle between top-level modules {scc:?} (one reference per edge; point \
             the edges down the floors of docs/architecture.md):\n  {}",
            describe(&graph, &cycle)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.concat());
}

#[test]
fn file_cycles_stay_small() {
    let graph = scan(&src()).expect("reading guardian/src");
    let sccs = cycles(&graph.files);
    let largest = sccs.iter().map(Vec::len).max().unwrap_or(1);
    println!("largest file-level import cycle: {largest} files");
    for c in &sccs {
        let names: Vec<_> = c.iter().map(|p| p.display().to_string()).collect();
        println!("  {} files: {}", c.len(), names.join(" "));
    }
    // Without the allow-listed module edges: what is left once those are removed.
    let module = |p: &PathBuf| {
        let first = p
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        first
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string()
    };
    let allowed: BTreeSet<(String, String)> = CYCLE_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let rest: BTreeMap<PathBuf, BTreeSet<PathBuf>> = graph
        .files
        .iter()
        .map(|(f, to)| {
            let kept = to
                .iter()
                .filter(|t| !allowed.contains(&(module(f), module(t))));
            (f.clone(), kept.cloned().collect())
        })
        .collect();
    let after = cycles(&rest).iter().map(Vec::len).max().unwrap_or(1);
    println!("largest file-level import cycle without the allow-listed edges: {after} files");
    // The same within each top-level module alone: what is left once the modules point one way.
    let top = |p: &PathBuf| p.components().next().map(|c| c.as_os_str().to_owned());
    let inner: BTreeMap<PathBuf, BTreeSet<PathBuf>> = graph
        .files
        .iter()
        .map(|(f, to)| {
            (
                f.clone(),
                to.iter().filter(|t| top(t) == top(f)).cloned().collect(),
            )
        })
        .collect();
    for c in cycles(&inner) {
        let names: Vec<_> = c.iter().map(|p| p.display().to_string()).collect();
        println!("  within a module, {} files: {}", c.len(), names.join(" "));
    }
    assert!(
        largest <= MAX_FILE_CYCLE,
        "an import cycle spans {largest} files (at most {MAX_FILE_CYCLE}): {:?}",
        sccs.iter().find(|c| c.len() == largest)
    );
}

#[test]
fn scanner_sees_use_trees_super_and_cycles() {
    let dir = std::env::temp_dir().join(format!("guardian-floors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).expect("temp dir");
    let write = |p: &str, s: &str| std::fs::write(dir.join(p), s).expect("write");
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write(
        "a.rs",
        "use crate::{b::{self, X}, c as _};\n// crate::zz\nfn f() { let _ = \"crate::c\"; }\n",
    );
    write("b/mod.rs", "mod inner;\nfn g() { inner::h(); }\n");
    write(
        "b/inner.rs",
        "pub(in crate::c) fn v() {}\npub fn h() { super::super::a::f(); let _ = '\\''; }\n",
    );
    write(
        "c.rs",
        "use self::d::*;\nmod d {}\n#[cfg(test)]\nmod tests { use crate::a::f; }\n",
    );
    let graph = scan(&dir).expect("scan");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let edges: Vec<_> = graph.modules.keys().cloned().collect();
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(edges, vec![e("a", "b"), e("a", "c"), e("b", "a")]);
    assert_eq!(
        graph.modules[&e("b", "a")][0],
        (PathBuf::from("b/inner.rs"), 2)
    );
    assert_eq!(
        cycles(&graph.module_adjacency()),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
    let files = cycles(&graph.files);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].len(),
        3,
        "a.rs → b/mod.rs → b/inner.rs → a.rs: {files:?}"
    );
}
