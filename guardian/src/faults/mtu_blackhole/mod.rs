//! `mtu_blackhole` (layer 3): a flow keeps timing out on full-size segments while small ones
//! got through — the path drops packets above some size and the ICMP "fragmentation needed" /
//! "packet too big" that would lower the path MTU never arrives.
//!
//! Signal (kernel, `tcp:tcp_retransmit_skb` per flow): the number of consecutive
//! retransmission-timer retransmits of segments at least the flow's MSS long without progress
//! (`icsk_retransmits` at the last such retransmit; a small segment needing the timer, or a
//! retransmit outside the timer, resets it). The handshake's small segments got through (the
//! flow is past SYN_SENT/SYN_RECV), and a flow whose small segments also time out is not
//! counted. Opens per (netns, destination address, port) when one flow reaches
//! `min_rto_retransmits`; clears when no flow to it does any more (the flow closed, made
//! progress, or has been silent for `stale_after_ms`, longer than TCP's largest RTO).
use std::collections::BTreeMap;
use std::time::Instant;

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};
use crate::model::sample::FlowRetrans;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::MtuBlackhole;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Consecutive timer retransmits of full-size segments on one flow that open the fault.
        pub min_rto_retransmits: u32,
        /// A flow with no retransmit for this long no longer counts (TCP_RTO_MAX is 120 s).
        pub stale_after_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_rto_retransmits: 3,
            stale_after_ms: 150_000,
            hysteresis: Hysteresis::new(0, 5_000, 30_000),
        }
    }
}

pub struct MtuBlackhole {
    cfg: Config,
    tracker: Tracker,
}

impl MtuBlackhole {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 3,
                severity: Severity::Error,
            },
            cfg.hysteresis,
        );
        Self { cfg, tracker }
    }

    fn stuck(&self, f: &FlowRetrans) -> bool {
        f.full_streak >= self.cfg.min_rto_retransmits
            && f.idle_ms <= self.cfg.stale_after_ms
            && f.mss > 0
            && f.len >= f.mss
    }
}

pub fn key(netns: u32, addr: &str, port: u16) -> String {
    format!("{netns}/dst:{addr}:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> MtuBlackhole {
    MtuBlackhole::new(cfg.clone())
}

impl Detector for MtuBlackhole {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Flows(s) = input else {
            return Vec::new();
        };
        let mut by_dst: BTreeMap<(&str, u16), Vec<&FlowRetrans>> = BTreeMap::new();
        for f in s.retrans_by_flow.iter().filter(|f| self.stuck(f)) {
            by_dst
                .entry((f.daddr.as_str(), f.dport))
                .or_default()
                .push(f);
        }
        let holding = by_dst
            .into_iter()
            .map(|((addr, port), flows)| {
                let worst = flows.iter().max_by_key(|f| f.full_streak).unwrap();
                Holding {
                    key: key(s.netns, addr, port),
                    netns: Some(s.netns),
                    subject: Subject {
                        addr: Some(addr.to_string()),
                        port: Some(port),
                        ..Default::default()
                    },
                    evidence: super::Evidence::MtuBlackhole(Evidence {
                        rto_retransmits: worst.full_streak,
                        threshold: self.cfg.min_rto_retransmits,
                        segment_len: worst.len,
                        mss: worst.mss,
                        backoff: worst.backoff,
                        full_retransmits: worst.full,
                        small_retransmits: worst.small,
                        small_rto_retransmits: worst.rto_small,
                        sport: worst.sport,
                        flows: flows.len(),
                    }),
                }
            })
            .collect();
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultState;
    use crate::model::sample::FlowSample;
    use std::time::Duration;

    const NS: u32 = 4026532200;

    fn flow(dst: &str, sport: u16, streak: u32, len: u32) -> FlowRetrans {
        FlowRetrans {
            daddr: dst.into(),
            dport: 5001,
            sport,
            full: streak as u64 + 1,
            rto_full: streak as u64,
            full_streak: streak,
            mss: 1448,
            len,
            idle_ms: 100,
            ..Default::default()
        }
    }

    fn sample(flows: Vec<FlowRetrans>) -> Input {
        Input::Flows(FlowSample {
            netns: NS,
            retrans_by_flow: flows,
            ..Default::default()
        })
    }

    fn cfg() -> Config {
        Config {
            hysteresis: Hysteresis {
                clear_after_ms: 2000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    fn run(steps: &[u32]) -> Vec<Vec<FaultState>> {
        let mut d = MtuBlackhole::new(cfg());
        let t0 = Instant::now();
        steps
            .iter()
            .enumerate()
            .map(|(i, &streak)| {
                let flows = if streak > 0 {
                    vec![flow("10.0.0.2", 40000, streak, 1448)]
                } else {
                    vec![]
                };
                d.observe(&sample(flows), t0 + Duration::from_secs(i as u64))
                    .into_iter()
                    .map(|f| f.state)
                    .collect()
            })
            .collect()
    }

    use FaultState::{Cleared as C, Opened as O};

    #[test]
    fn two_timeouts_are_not_a_blackhole_three_are() {
        assert!(run(&[1, 2, 2, 2]).iter().all(Vec::is_empty));
        assert_eq!(run(&[1, 2, 3]), vec![vec![], vec![], vec![O]]);
    }

    #[test]
    fn progress_then_clear_without_flapping() {
        // The streak resets (progress) for a moment and comes back: no flap; gone: cleared.
        let got = run(&[3, 0, 4, 0, 0, 0]);
        assert_eq!(got, vec![vec![O], vec![], vec![], vec![], vec![], vec![C]]);
    }

    #[test]
    fn small_segments_and_stale_flows_do_not_count() {
        let mut d = MtuBlackhole::new(cfg());
        let t0 = Instant::now();
        let mut small = flow("10.0.0.2", 40000, 5, 500);
        small.mss = 1448;
        let mut stale = flow("10.0.0.3", 40001, 5, 1448);
        stale.idle_ms = 200_000;
        assert!(d.observe(&sample(vec![small, stale]), t0).is_empty());
    }

    #[test]
    fn destinations_are_separate_and_flows_to_one_dst_merge() {
        let mut d = MtuBlackhole::new(cfg());
        let t0 = Instant::now();
        let f = d.observe(
            &sample(vec![
                flow("10.0.0.2", 40000, 3, 1448),
                flow("10.0.0.2", 40001, 4, 2896),
                flow("10.0.0.9", 40002, 2, 1448),
            ]),
            t0,
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(f[0].subject.port, Some(5001));
        assert_eq!(f[0].key, key(NS, "10.0.0.2", 5001));
        assert_eq!(f[0].evidence.json()["rto_retransmits"], 4);
        assert_eq!(f[0].evidence.json()["flows"], 2);
        assert_eq!(f[0].netns, Some(NS));
    }
}
