//! The remedy ladder per fault, ordered by what worked here: per (fault, remedy) counts of
//! verified successes and failures, persisted in `<state_dir>/ladder.json`.
//!
//! The counts decay exponentially with a half-life of [`HALF_LIFE_S`] (a day): what happened
//! last week weighs little, so a remedy demoted by forced rollbacks (an attacker undoing its
//! changes, a bad day) gets its chance again once its failures fade below `min_attempts`.
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
/// The counts halve every this many seconds.
pub const HALF_LIFE_S: f64 = 24.0 * 3600.0;

/// Decayed counts of one (fault, remedy), as of `at` (Unix seconds; 0 in files of older
/// versions: decayed from their first use on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub success: f64,
    pub failure: f64,
    #[serde(default)]
    pub at: u64,
}

impl Stat {
    pub fn attempts(&self) -> f64 {
        self.success + self.failure
    }

    /// Laplace-smoothed success rate.
    pub fn rate(&self) -> f64 {
        (self.success + 1.0) / (self.attempts() + 2.0)
    }

    /// The counts as of `now` (Unix seconds).
    pub fn decayed(&self, now: u64) -> Stat {
        if self.at == 0 {
            return Stat { at: now, ..*self };
        }
        let f = 0.5f64.powf(now.saturating_sub(self.at) as f64 / HALF_LIFE_S);
        Stat {
            success: self.success * f,
            failure: self.failure * f,
            at: now.max(self.at),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
        self.stat_at(fault, remedy, unix_now())
    }

    fn stat_at(&self, fault: &str, remedy: &str, now: u64) -> Stat {
        self.stats
            .get(fault)
            .and_then(|m| m.get(remedy))
            .map(|s| s.decayed(now))
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
        self.confident_at(fault, remedy, min_rate, min_attempts, unix_now())
    }

    fn confident_at(&self, fault: &str, remedy: &str, min: f64, attempts: u32, now: u64) -> bool {
        let s = self.stat_at(fault, remedy, now);
        s.attempts() < attempts as f64 || s.rate() >= min
    }

    /// Counts an outcome and persists the ladder (write to a temporary file, fsync, rename).
    pub fn record(&mut self, fault: &str, remedy: &str, success: bool) {
        self.record_at(fault, remedy, success, unix_now());
    }

    fn record_at(&mut self, fault: &str, remedy: &str, success: bool, now: u64) {
        let s = self
            .stats
            .entry(fault.to_string())
            .or_default()
            .entry(remedy.to_string())
            .or_default();
        *s = s.decayed(now);
        if success {
            s.success += 1.0;
        } else {
            s.failure += 1.0;
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
                            let s = s.decayed(unix_now());
                            (
                                r.clone(),
                                serde_json::json!({"success": s.success.round() as u64, "failure": s.failure.round() as u64, "rate": s.rate()}),
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
    fn a_remedy_demoted_by_forced_rollbacks_recovers_as_they_fade() {
        let mut l = Ladder::in_memory();
        let t0 = 1_800_000_000;
        for _ in 0..8 {
            l.record_at("f", "a", false, t0);
        }
        assert!(!l.confident_at("f", "a", 0.2, 5, t0));
        // a day later the failures weigh half: 4 < 5 attempts, allowed again
        let day = HALF_LIFE_S as u64;
        assert!(l.confident_at("f", "a", 0.2, 5, t0 + day + 60));
        let s = l.stat_at("f", "a", t0 + day);
        assert!((s.failure - 4.0).abs() < 1e-9, "{s:?}");
        // a new outcome adds to the decayed counts
        l.record_at("f", "a", true, t0 + day);
        let s = l.stat_at("f", "a", t0 + day);
        assert!((s.success - 1.0).abs() < 1e-9 && (s.failure - 4.0).abs() < 1e-9);
        // files of older versions (integer counts, no time) load and start decaying
        let old: Stat = serde_json::from_str(r#"{"success": 3, "failure": 2}"#).unwrap();
        assert_eq!(old.decayed(t0).attempts(), 5.0);
    }

    #[test]
    fn persisted_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("guardian-ladder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut l = Ladder::load(&dir);
        l.record("f", "a", true);
        l.record("f", "a", false);
        let back = Ladder::load(&dir);
        let s = back.stat("f", "a");
        assert!((s.success - 1.0).abs() < 1e-3 && (s.failure - 1.0).abs() < 1e-3);
        assert_eq!(back.snapshot()["f"]["a"]["rate"], 0.5);
        std::fs::write(dir.join(FILE_NAME), "{garbage").unwrap();
        assert_eq!(Ladder::load(&dir).stat("f", "a"), Stat::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
