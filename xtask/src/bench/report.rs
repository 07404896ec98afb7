//! Benchmark results: what each benchmark returns, printed to the terminal and merged into
//! `target/bench/results.json` (one entry per benchmark, the latest run of it).
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::facts::Machine;
use crate::cmd;

/// A table as it appears in docs/benchmarks.md.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: ToString>(&mut self, cells: &[S]) {
        self.rows
            .push(cells.iter().map(ToString::to_string).collect());
    }

    /// GitHub-flavoured markdown, title in bold above.
    pub fn markdown(&self) -> String {
        let mut out = format!("**{}**\n\n", self.title);
        out.push_str(&format!("| {} |\n", self.columns.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(self.columns.len())));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out
    }
}

/// The outcome of one benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    /// The command that reproduces this result.
    pub command: String,
    pub quick: bool,
    pub machine: Machine,
    /// Seconds since the Unix epoch when the benchmark finished.
    pub finished_unix: u64,
    pub duration_s: f64,
    pub tables: Vec<Table>,
    /// Headline figures: (label, value), e.g. ("XDP cost over no-op", "12.3 ns/packet").
    pub headline: Vec<(String, String)>,
    /// Goals: (description, met).
    pub goals: Vec<(String, bool)>,
    pub notes: Vec<String>,
    /// Raw samples for anyone who wants to recompute.
    pub raw: serde_json::Value,
}

/// What a benchmark function hands back; the runner adds the rest.
#[derive(Debug, Default)]
pub struct Measured {
    pub tables: Vec<Table>,
    pub headline: Vec<(String, String)>,
    pub goals: Vec<(String, bool)>,
    pub notes: Vec<String>,
    pub raw: serde_json::Value,
}

impl Outcome {
    pub fn print(&self) {
        for t in &self.tables {
            eprintln!("\n{}", t.markdown());
        }
        for (label, value) in &self.headline {
            eprintln!("  {label}: {value}");
        }
        for (goal, met) in &self.goals {
            eprintln!("  goal {goal}: {}", if *met { "met" } else { "NOT met" });
        }
        for n in &self.notes {
            eprintln!("  note: {n}");
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub benches: BTreeMap<String, Outcome>,
}

pub fn results_path() -> Result<PathBuf> {
    Ok(cmd::target_dir()?.join("bench/results.json"))
}

impl Results {
    /// The stored results, or none if the file does not exist yet.
    pub fn load(path: &Path) -> Result<Results> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a results file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Results::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}
