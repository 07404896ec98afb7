//! The remedy ladder per fault, ordered by what worked here: per (fault, remedy) counts of
//! verified successes and failures, persisted in `<state_dir>/ladder.json`.
//!
//! Order: smoothed success rate (Laplace: (s + 1) / (s + f + 2), so an untried remedy scores
//! 0.5), highest first; ties keep the catalogue order of `remedy::all()`. A remedy whose rate
//! fell below `safety.min_confidence` after `safety.min_attempts` is only planned, never
//! applied.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::FaultId;
use crate::remedy::RemedyId;

/// The ladder file's name in the state directory.
pub const FILE_NAME: &str = "ladder.json";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub success: u32,
    pub failure: u32,
}

impl Stat {
    pub fn attempts(&self) -> u32 {
        self.success + self.failure
    }

    /// Laplace-smoothed success rate.
    pub fn rate(&self) -> f64 {
        (self.success as f64 + 1.0) / (self.attempts() as f64 + 2.0)
    }
}

#[derive(Debug, Default)]
pub struct Ladder {
    /// fault → remedy → counts.
    stats: BTreeMap<String, BTreeMap<String, Stat>>,
    path: Option<PathBuf>,
}

impl Ladder {
    /// Loads the counts from the state directory (an absent file is an empty ladder; a
    /// corrupt one is reported and replaced).
    pub fn load(dir: &Path) -> Ladder {
        let path = dir.join(FILE_NAME);
        let stats = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "ignoring an unreadable ladder file: {e}");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Ladder {
            stats,
            path: Some(path),
        }
    }

    /// A ladder kept in memory only (observe mode without a state directory, tests).
    pub fn in_memory() -> Ladder {
        Ladder::default()
    }

    pub fn stat(&self, fault: &str, remedy: &str) -> Stat {
        self.stats
            .get(fault)
            .and_then(|m| m.get(remedy))
            .copied()
            .unwrap_or_default()
    }

    /// Indices of `remedies` (in catalogue order) ordered for `fault`.
    pub fn order(&self, fault: FaultId, remedies: &[RemedyId]) -> Vec<usize> {
        let fault = fault.as_str();
        let mut idx: Vec<usize> = (0..remedies.len()).collect();
        // Stable sort: equal rates keep catalogue order.
        idx.sort_by(|&a, &b| {
            let (ra, rb) = (
                self.stat(fault, remedies[a].as_str()).rate(),
                self.stat(fault, remedies[b].as_str()).rate(),
            );
            rb.partial_cmp(&ra).unwrap_or(std::cmp::Ordering::Equal)
        });
        idx
    }

    /// Whether the remedy's record allows it to act in enforce mode.
    pub fn confident(&self, fault: &str, remedy: &str, min_rate: f64, min_attempts: u32) -> bool {
        let s = self.stat(fault, remedy);
        s.attempts() < min_attempts || s.rate() >= min_rate
    }

    /// Counts an outcome and persists the ladder (write to a temporary file, fsync, rename).
    pub fn record(&mut self, fault: &str, remedy: &str, success: bool) {
        let s = self
            .stats
            .entry(fault.to_string())
            .or_default()
            .entry(remedy.to_string())
            .or_default();
        if success {
            s.success += 1;
        } else {
            s.failure += 1;
        }
        if let Err(e) = self.save() {
            tracing::warn!("cannot save the ladder: {e}");
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.stats).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Every count, for status: `{fault: {remedy: {success, failure, rate}}}`.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.stats
                .iter()
                .map(|(fault, m)| {
                    let inner = m
                        .iter()
                        .map(|(r, s)| {
                            (
                                r.clone(),
                                serde_json::json!({"success": s.success, "failure": s.failure, "rate": s.rate()}),
                            )
                        })
                        .collect();
                    (fault.clone(), serde_json::Value::Object(inner))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Any fault and three distinct remedies.
    const F: FaultId = FaultId::LinkDown;
    const A: RemedyId = RemedyId::LinkUp;
    const B: RemedyId = RemedyId::RouteRestore;
    const C: RemedyId = RemedyId::RouteFailover;

    #[test]
    fn untried_remedies_keep_catalogue_order() {
        let l = Ladder::in_memory();
        assert_eq!(l.order(FaultId::SynFlood, &[A, B, C]), [0, 1, 2]);
    }

    #[test]
    fn measured_success_reorders_the_ladder() {
        let mut l = Ladder::in_memory();
        // a fails twice, c succeeds once: c (0.67) > b (0.5, untried) > a (0.25)
        l.record(F.as_str(), A.as_str(), false);
        l.record(F.as_str(), A.as_str(), false);
        l.record(F.as_str(), C.as_str(), true);
        assert_eq!(l.order(F, &[A, B, C]), [2, 1, 0]);
        // other faults are unaffected
        assert_eq!(l.order(FaultId::LinkFlapping, &[A, B, C]), [0, 1, 2]);
    }

    #[test]
    fn confidence_needs_enough_attempts() {
        let mut l = Ladder::in_memory();
        for _ in 0..4 {
            l.record("f", "a", false);
        }
        // 4 attempts < 5: still allowed although the rate is 1/6
        assert!(l.confident("f", "a", 0.2, 5));
        l.record("f", "a", false);
        assert!(!l.confident("f", "a", 0.2, 5));
        assert!(l.confident("f", "b", 0.2, 5));
    }

    #[test]
    fn persisted_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("guardian-ladder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut l = Ladder::load(&dir);
        l.record("f", "a", true);
        l.record("f", "a", false);
        let back = Ladder::load(&dir);
        assert_eq!(
            back.stat("f", "a"),
            Stat {
                success: 1,
                failure: 1
            }
        );
        assert_eq!(back.snapshot()["f"]["a"]["rate"], 0.5);
        std::fs::write(dir.join(FILE_NAME), "{garbage").unwrap();
        assert_eq!(Ladder::load(&dir).stat("f", "a"), Stat::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
