//! Health scores 0–100 per layer (2, 3, 4) and overall, for `guardian status` and the
//! `guardian_health_score{layer}` gauge. A pure function of what is open now:
//!
//! - each layer starts at 100 and loses, per open incident of that layer (the fault's
//!   `layer`: link faults 2, route/MTU faults 3, transport faults 4; docs/faults.md), a
//!   penalty by severity: critical 50, error 30, warning 15, notice 5, info 2;
//! - events lost in the last minute (`loss` events: ring buffer full, map full, recursion)
//!   mean guardian may be missing faults: every layer loses 10, or 20 from 1000 lost events;
//! - scores never go below 0; `overall` is the lowest layer (one broken layer is a broken
//!   host).
pub mod gauges;
pub mod progress;

use serde::{Deserialize, Serialize};

use crate::model::Severity;

/// Layers guardian scores.
pub const LAYERS: [u8; 3] = [2, 3, 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub l2: u8,
    pub l3: u8,
    pub l4: u8,
    pub overall: u8,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            l2: 100,
            l3: 100,
            l4: 100,
            overall: 100,
        }
    }
}

/// What one open incident costs its layer.
pub fn penalty(s: Severity) -> u32 {
    match s {
        Severity::Critical => 50,
        Severity::Error => 30,
        Severity::Warning => 15,
        Severity::Notice => 5,
        Severity::Info => 2,
    }
}

/// What events lost in the last minute cost every layer.
pub fn loss_penalty(recent_losses: u64) -> u32 {
    match recent_losses {
        0 => 0,
        1..=999 => 10,
        _ => 20,
    }
}

/// Scores open incidents `(layer, severity)` and the events lost in the last minute. A layer
/// outside 2–4 counts against the nearest of them.
pub fn score(open: impl IntoIterator<Item = (u8, Severity)>, recent_losses: u64) -> Health {
    let mut lost = [0u32; 3];
    for (layer, sev) in open {
        lost[(layer.clamp(2, 4) - 2) as usize] += penalty(sev);
    }
    let l = |i: usize| 100u32.saturating_sub(lost[i] + loss_penalty(recent_losses)) as u8;
    let (l2, l3, l4) = (l(0), l(1), l(2));
    Health {
        l2,
        l3,
        l4,
        overall: l2.min(l3).min(l4),
    }
}

impl Health {
    /// `(layer label, score)` for the gauges and the status screen.
    pub fn labelled(&self) -> [(&'static str, u8); 4] {
        [
            ("2", self.l2),
            ("3", self.l3),
            ("4", self.l4),
            ("overall", self.overall),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::*;

    /// (open incidents, losses in the last minute) -> (l2, l3, l4, overall)
    type Case = (&'static [(u8, Severity)], u64, (u8, u8, u8, u8));

    #[test]
    fn table() {
        let cases: &[Case] = &[
            (&[], 0, (100, 100, 100, 100)),
            (&[(2, Error)], 0, (70, 100, 100, 70)),
            (&[(2, Error), (2, Error)], 0, (40, 100, 100, 40)),
            (&[(3, Critical)], 0, (100, 50, 100, 50)),
            (
                &[(4, Warning), (4, Notice), (4, Info)],
                0,
                (100, 100, 78, 78),
            ),
            (
                &[(4, Critical), (4, Critical), (4, Critical)],
                0,
                (100, 100, 0, 0),
            ),
            (&[], 1, (90, 90, 90, 90)),
            (&[], 5000, (80, 80, 80, 80)),
            (&[(2, Error)], 10, (60, 90, 90, 60)),
            (&[(1, Error), (7, Warning)], 0, (70, 100, 85, 70)),
        ];
        for (open, losses, (l2, l3, l4, overall)) in cases {
            let h = score(open.iter().copied(), *losses);
            assert_eq!(
                h,
                Health {
                    l2: *l2,
                    l3: *l3,
                    l4: *l4,
                    overall: *overall
                },
                "{open:?} losses {losses}"
            );
        }
    }

    #[test]
    fn nothing_open_is_perfect_health() {
        assert_eq!(score([], 0), Health::default());
        assert_eq!(Health::default().labelled()[3], ("overall", 100));
    }
}
