//! Regenerates the generated parts of docs/benchmarks.md and the README's `## Numbers` from
//! `target/bench/results.json`: everything between `<!-- bench:begin NAME -->` and
//! `<!-- bench:end NAME -->` is replaced, the prose around it is left alone.
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::report::{Outcome, Results};
use crate::cmd;

/// Rewrites docs/benchmarks.md and README.md; returns the blocks that had no result yet.
pub fn regenerate(results: &Results) -> Result<Vec<String>> {
    let root = cmd::repo_root()?;
    let mut missing = Vec::new();
    for file in ["docs/benchmarks.md", "README.md"] {
        let path = root.join(file);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut out = text.clone();
        for name in block_names(&text) {
            let rendered = match name.as_str() {
                "headline" => Some(merge_headline(&text, &headline(results))),
                "machine" => machine(results).map(|m| merge_machine(&text, &m)),
                _ => render(&name, results),
            };
            let body = match rendered {
                Some(b) => b,
                None => {
                    missing.push(name.clone());
                    continue;
                }
            };
            out = replace_block(&out, &name, &body)?;
        }
        if out != text {
            write(&path, &out)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(missing)
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The names of every `<!-- bench:begin NAME -->` marker, in order.
pub fn block_names(text: &str) -> Vec<String> {
    text.match_indices("<!-- bench:begin ")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest.find(" -->")?;
            Some(rest[..end].trim().to_owned())
        })
        .collect()
}

/// Replaces what lies between the begin and end markers of `name` with `body`.
pub fn replace_block(text: &str, name: &str, body: &str) -> Result<String> {
    let begin = format!("<!-- bench:begin {name} -->");
    let end = format!("<!-- bench:end {name} -->");
    let Some(b) = text.find(&begin) else {
        bail!("marker `{begin}` is missing");
    };
    let after = b + begin.len();
    let Some(e) = text[after..].find(&end).map(|e| after + e) else {
        bail!("marker `{end}` is missing after `{begin}`");
    };
    Ok(format!(
        "{}\n{}\n{}",
        &text[..after],
        body.trim_end(),
        &text[e..]
    ))
}

/// The generated markdown of one block: `headline` (README), `machine`, or a benchmark.
fn render(name: &str, results: &Results) -> Option<String> {
    match name {
        "headline" => Some(headline(results)),
        "machine" => machine(results),
        _ => results.benches.get(name).map(bench),
    }
}

/// The label of a headline line (`- LABEL: **VALUE**`).
fn label(line: &str) -> Option<&str> {
    line.strip_prefix("- ")?.split_once(": **").map(|x| x.0)
}

/// The new headline lines, plus the lines of the block in `text` whose benchmarks are not in
/// this results file (a run of some benchmarks keeps the others' lines), in their place.
pub fn merge_headline(text: &str, new: &str) -> String {
    let old = text
        .find("<!-- bench:begin headline -->")
        .and_then(|b| {
            let rest = &text[b..];
            rest.find("<!-- bench:end headline -->").map(|e| &rest[..e])
        })
        .unwrap_or("");
    let fresh: Vec<&str> = new.lines().filter(|l| label(l).is_some()).collect();
    let mut out = Vec::new();
    let mut used = vec![false; fresh.len()];
    for l in old.lines().filter(|l| label(l).is_some()) {
        match fresh.iter().position(|f| label(f) == label(l)) {
            Some(i) => {
                out.push(fresh[i]);
                used[i] = true;
            }
            None => out.push(l),
        }
    }
    out.extend(
        fresh
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(f, _)| *f),
    );
    if out.is_empty() {
        return new.to_string();
    }
    out.join("\n") + "\n"
}

/// The machine table with the rows of `text`'s block whose benchmark is not in the new table
/// kept (a run of some benchmarks keeps the others' rows), in name order.
pub fn merge_machine(text: &str, new: &str) -> String {
    let name = |l: &str| l.split('|').nth(1).map(|c| c.trim().to_owned());
    let rows = |t: &str| -> Vec<String> {
        t.lines()
            .skip(2)
            .filter(|l| l.starts_with("| "))
            .map(str::to_owned)
            .collect()
    };
    let old = text
        .find("<!-- bench:begin machine -->")
        .and_then(|b| {
            let rest = &text[b + "<!-- bench:begin machine -->".len()..];
            rest.find("<!-- bench:end machine -->")
                .map(|e| rest[..e].trim_start())
        })
        .unwrap_or("");
    let fresh = rows(new);
    let mut all: Vec<String> = rows(old)
        .into_iter()
        .filter(|l| !fresh.iter().any(|f| name(f) == name(l)))
        .chain(fresh.iter().cloned())
        .collect();
    all.sort_by_key(|l| name(l));
    let head: Vec<&str> = new.lines().take(2).collect();
    format!("{}\n{}\n", head.join("\n"), all.join("\n"))
}

fn headline(results: &Results) -> String {
    let mut out = String::new();
    for o in results.benches.values() {
        for (label, value) in &o.headline {
            out.push_str(&format!("- {label}: **{value}**\n"));
        }
    }
    if out.is_empty() {
        out.push_str("- (no benchmark has been run yet: `cargo xtask bench`)\n");
    }
    out
}

fn machine(results: &Results) -> Option<String> {
    let mut out = String::from(
        "| benchmark | run | kernel | CPU | cores | memory | guardian | load (1 min) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for o in results.benches.values() {
        let m = &o.machine;
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} GiB | `{}` | {:.2} |\n",
            o.name, o.command, m.kernel, m.cpu, m.cores, m.memory_gib, m.guardian_rev, m.loadavg_1m
        ));
    }
    (!results.benches.is_empty()).then_some(out)
}

fn bench(o: &Outcome) -> String {
    let mut out = format!(
        "_Generated from `target/bench/results.json`: `{}`{}, {:.0} s, guardian `{}`, load {:.2}._\n\n",
        o.command,
        if o.quick { " (quick)" } else { "" },
        o.duration_s,
        o.machine.guardian_rev,
        o.machine.loadavg_1m
    );
    for t in &o.tables {
        out.push_str(&t.markdown());
        out.push('\n');
    }
    for (goal, met) in &o.goals {
        let mark = if *met { "met" } else { "**not met**" };
        out.push_str(&format!("- Goal {goal}: {mark}\n"));
    }
    for n in &o.notes {
        out.push_str(&format!("- {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_block_names_in_order() {
        let t = "a <!-- bench:begin x -->\n<!-- bench:end x --> <!-- bench:begin y -->z<!-- bench:end y -->";
        assert_eq!(block_names(t), ["x", "y"]);
    }

    #[test]
    fn replaces_only_the_named_block() {
        let t = "intro\n<!-- bench:begin x -->\nold\n<!-- bench:end x -->\nmiddle\n\
                 <!-- bench:begin y -->\nkeep\n<!-- bench:end y -->\n";
        let out = replace_block(t, "x", "new\n").unwrap();
        assert_eq!(
            out,
            "intro\n<!-- bench:begin x -->\nnew\n<!-- bench:end x -->\nmiddle\n\
             <!-- bench:begin y -->\nkeep\n<!-- bench:end y -->\n"
        );
        // Idempotent.
        assert_eq!(replace_block(&out, "x", "new").unwrap(), out);
    }

    #[test]
    fn a_partial_run_keeps_the_other_headline_lines() {
        let t = "x\n<!-- bench:begin headline -->\n- A: **1**\n- B: **2**\n<!-- bench:end headline -->\n";
        assert_eq!(
            merge_headline(t, "- B: **3**\n- C: **4**\n"),
            "- A: **1**\n- B: **3**\n- C: **4**\n"
        );
        assert_eq!(merge_headline("", "- C: **4**\n"), "- C: **4**\n");
    }

    #[test]
    fn a_partial_run_keeps_the_other_machine_rows() {
        let t = "<!-- bench:begin machine -->\n| benchmark | run |\n| --- | --- |\n| a | x |\n| c | y |\n<!-- bench:end machine -->";
        let new = "| benchmark | run |\n| --- | --- |\n| b | z |\n| c | w |\n";
        assert_eq!(
            merge_machine(t, new),
            "| benchmark | run |\n| --- | --- |\n| a | x |\n| b | z |\n| c | w |\n"
        );
    }

    #[test]
    fn missing_end_marker_is_an_error() {
        let err = replace_block("<!-- bench:begin x -->", "x", "b").unwrap_err();
        assert!(err.to_string().contains("bench:end x"));
        assert!(replace_block("", "x", "b").is_err());
    }
}
