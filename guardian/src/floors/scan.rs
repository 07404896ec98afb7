//! Test-only scanner behind `floors`: reads a crate's sources and lists which module and
//! which file each path (`crate::`, `super::`, `self::`, a child module) refers to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::lex::{lex, Tok};

/// Drops `#[cfg(test)] mod x { … }` and the `mod x;` of `#[cfg(test)] mod x;` (so the walk
/// does not enter it): test code may import what it likes, as cargo-modules' default.
fn drop_cfg_test(toks: Vec<(Tok, usize)>) -> Vec<(Tok, usize)> {
    let ident = |t: Option<&(Tok, usize)>, s: &str| matches!(t, Some((Tok::Ident(x), _)) if x == s);
    let (mut out, mut test, mut i) = (Vec::new(), false, 0);
    while i < toks.len() {
        let t = &toks[i].0;
        if ident(toks.get(i), "cfg")
            && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('('))
            && ident(toks.get(i + 2), "test")
        {
            test = true;
        } else if test && ident(toks.get(i), "mod") {
            let (mut j, mut depth) = (i + 2, 0);
            while j < toks.len() {
                match toks[j].0 {
                    Tok::Punct('{') => depth += 1,
                    Tok::Punct('}') => depth -= 1,
                    _ => {}
                }
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            test = false;
            i = j;
            continue;
        } else if matches!(t, Tok::Punct(';' | '{' | '}')) {
            test = false;
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// One source file: its module path (`["engine", "act"]`) and tokens.
struct File {
    rel: PathBuf,
    module: Vec<String>,
    toks: Vec<(Tok, usize)>,
}

/// Follows `mod x;` (and `#[path = "…"] mod x;`) from `rel`, depth first.
fn walk(
    root: &Path,
    rel: PathBuf,
    module: Vec<String>,
    out: &mut Vec<File>,
) -> std::io::Result<()> {
    let toks = drop_cfg_test(lex(&std::fs::read_to_string(root.join(&rel))?));
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = rel.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let dir = if ["lib", "main", "mod"].contains(&stem) {
        parent.clone()
    } else {
        parent.join(stem)
    };
    let mut children = Vec::new();
    let (mut depth, mut path_attr) = (0usize, None);
    for (i, w) in toks.windows(3).enumerate() {
        match (&w[0].0, &w[1].0, &w[2].0) {
            (Tok::Ident(p), Tok::Punct('='), Tok::Str(s)) if p == "path" => {
                path_attr = Some(s.clone())
            }
            (Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')) if m == "mod" && depth == 0 => {
                let file = match path_attr.take() {
                    Some(p) => parent.join(p),
                    None if root.join(dir.join(format!("{name}.rs"))).exists() => {
                        dir.join(format!("{name}.rs"))
                    }
                    None => dir.join(name).join("mod.rs"),
                };
                children.push((name.clone(), file));
            }
            _ => {}
        }
        match toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Punct(';') => path_attr = None,
            _ => {}
        }
    }
    out.push(File {
        rel,
        module: module.clone(),
        toks,
    });
    for (name, file) in children {
        let mut m = module.clone();
        m.push(name);
        walk(root, file, m, out)?;
    }
    Ok(())
}

/// Reads the paths of a `use` tree or an expression path from `i`, after `prefix`.
fn paths(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut segs = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) if s != "as" => {
                segs.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        None => return i,
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Ident(s)) if s == "as" => i += 2,
                        _ => {
                            let j = paths(toks, i, segs.clone(), out);
                            i = if j == i { i + 1 } else { j };
                        }
                    }
                }
            }
            _ => {}
        }
        out.push(segs);
        return i;
    }
}

/// References between top-level modules and between files.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// `(from, to)` top-level modules → every reference site (file, line).
    pub modules: BTreeMap<(String, String), Vec<(PathBuf, usize)>>,
    /// file → the files it refers to.
    pub files: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

impl Graph {
    pub fn module_adjacency(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in self.modules.keys() {
            adj.entry(a.clone()).or_default().insert(b.clone());
            adj.entry(b.clone()).or_default();
        }
        adj
    }
}

/// Scans the crate whose `lib.rs` is in `root`.
pub(crate) fn scan(root: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    walk(root, PathBuf::from("lib.rs"), Vec::new(), &mut files)?;
    let by_module: BTreeMap<&[String], &Path> = files
        .iter()
        .map(|f| (&f.module[..], f.rel.as_path()))
        .collect();
    let children = |m: &[String]| -> BTreeSet<String> {
        by_module
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .map(|k| k[m.len()].clone())
            .collect()
    };
    let mut g = Graph::default();
    for f in &files {
        let kids = children(&f.module);
        let mut inline: Vec<(String, usize)> = Vec::new();
        let (mut depth, mut skip_until) = (0, 0);
        let toks = &f.toks;
        for i in 0..toks.len() {
            if i < skip_until {
                continue; // inside a path already read (use groups hold balanced braces)
            }
            let prev = i.checked_sub(1).map(|p| &toks[p].0);
            match &toks[i].0 {
                Tok::Punct('{') => {
                    depth += 1;
                    if let (Some(Tok::Ident(name)), Some(Tok::Ident(m))) =
                        (prev, i.checked_sub(2).map(|p| &toks[p].0))
                    {
                        if m == "mod" {
                            inline.push((name.clone(), depth));
                        }
                    }
                }
                Tok::Punct('}') => {
                    if inline.last().is_some_and(|l| l.1 == depth) {
                        inline.pop();
                    }
                    depth -= 1;
                }
                Tok::Ident(s)
                    if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                        && prev != Some(&Tok::PathSep) =>
                {
                    let here: Vec<String> = f
                        .module
                        .iter()
                        .cloned()
                        .chain(inline.iter().map(|m| m.0.clone()))
                        .collect();
                    let relative = ["crate", "super", "self"].contains(&s.as_str())
                        || (inline.is_empty() && kids.contains(s));
                    // `pub(in crate::x)` restricts visibility: not a dependency.
                    let visibility = prev == Some(&Tok::Ident("in".into()))
                        && i >= 2
                        && toks[i - 2].0 == Tok::Punct('(');
                    if !relative || visibility {
                        continue;
                    }
                    let mut found = Vec::new();
                    skip_until = paths(toks, i, Vec::new(), &mut found);
                    for p in found {
                        if let Some(abs) = resolve(&here, &p) {
                            record(&mut g, f, toks[i].1, &abs, &by_module);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(g)
}

/// The absolute module path of `p` as written in module `here`.
fn resolve(here: &[String], p: &[String]) -> Option<Vec<String>> {
    let first = p.first()?;
    let abs: Vec<String> = match first.as_str() {
        "crate" => p[1..].to_vec(),
        "self" => here.iter().chain(&p[1..]).cloned().collect(),
        "super" => {
            let ups = p.iter().take_while(|s| *s == "super").count();
            let base = here.get(..here.len().checked_sub(ups)?)?;
            base.iter().chain(&p[ups..]).cloned().collect()
        }
        _ => here.iter().chain(p).cloned().collect(),
    };
    Some(abs.into_iter().filter(|s| s != "self").collect())
}

fn record(
    g: &mut Graph,
    f: &File,
    line: usize,
    abs: &[String],
    by_module: &BTreeMap<&[String], &Path>,
) {
    let Some(target) = (1..=abs.len()).rev().find_map(|n| by_module.get(&abs[..n])) else {
        return; // an item of the crate root, or not a module of ours
    };
    if *target != f.rel {
        g.files
            .entry(f.rel.clone())
            .or_default()
            .insert(target.to_path_buf());
    }
    if let (Some(from), Some(to)) = (f.module.first(), abs.first()) {
        if from != to && by_module.contains_key(&abs[..1]) {
            g.modules
                .entry((from.clone(), to.clone()))
                .or_default()
                .push((f.rel.clone(), line));
        }
    }
}
