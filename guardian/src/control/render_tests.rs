//! Snapshots of the human screens, rendered from fixed input (never the live machine).
use std::collections::BTreeMap;

use super::*;
use crate::engine::api::*;
use crate::health::Health;

fn fixture() -> Status {
    Status {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_s: 3725,
        mode: "enforce".into(),
        netns: 4026531840,
        state_dir: "/var/lib/guardian".into(),
        health: Health {
            l2: 70,
            l3: 100,
            l4: 85,
            overall: 70,
        },
        incidents: vec![IncidentView {
            incident: "187a3f0c2b9d4e10-0001".into(),
            fault: "link_down".into(),
            layer: 2,
            severity: "error".into(),
            subject: "eth1".into(),
            netns: 4026531840,
            since: "2026-11-22T08:20:07.123456789Z".into(),
            cleared: None,
        }],
        mitigations: vec![MitigationView {
            rollback_id: "187a3f0c2b9d4e10-0002".into(),
            remedy: "xdp_source_limit".into(),
            fault: "syn_flood".into(),
            subject: "10.0.0.9".into(),
            ttl_s: Some(95),
            until_clear: false,
            waiting_for_effect: true,
        }],
        budgets: BudgetView {
            global_max_per_hour: 30,
            global_left: 29,
            window_s: 3600,
            per_remedy_max: 10,
            per_subject_max: 3,
            used: vec![BudgetUse {
                remedy: "xdp_source_limit".into(),
                subject: "src:10.0.0.9".into(),
                remedy_left: 9,
                subject_left: 2,
            }],
        },
        remedies: vec![RemedyRate {
            fault: "link_down".into(),
            remedy: "link_up".into(),
            attempts: 2,
            successes: 2,
            rate: 0.75,
            confident: true,
        }],
        events: EventTotals {
            total: 1234,
            by_type: BTreeMap::from([("counters".into(), 1200), ("fault".into(), 34)]),
            lost: 3,
            lost_last_minute: 0,
        },
        stale_ms: None,
    }
}

const STATUS: &str = "\
guardian 0.1.0  pid 4242  up 1h02m  mode enforce  netns 4026531840
health   L2  70  L3 100  L4  85  overall  70

incidents (1 open)
  link_down                  L2 error    eth1                   since 2026-11-22T08:20:07Z  187a3f0c2b9d4e10-0001
mitigations (1 active)
  xdp_source_limit   syn_flood                  10.0.0.9               ttl 1m35s    187a3f0c2b9d4e10-0002  (waiting for effect)
budgets  29/30 actions left this hour; per remedy 10, per subject 3 within 1h00m
  xdp_source_limit   src:10.0.0.9                   remedy 9 left, subject 2 left
success rates (1 tried)
  link_down                  link_up              2/2   rate 0.75  confident
events   1234 emitted, 3 lost (0 in the last minute)
";

#[test]
fn status_screen() {
    assert_eq!(status(&fixture()), STATUS);
}

#[test]
fn empty_status_screen_says_so() {
    let s = status(&Status {
        mode: "observe".into(),
        health: Health::default(),
        ..Default::default()
    });
    assert!(
        s.contains("health   L2 100  L3 100  L4 100  overall 100\n"),
        "{s}"
    );
    assert!(
        s.contains("incidents (0 open)\nmitigations (0 active)\n"),
        "{s}"
    );
}

#[test]
fn history_screen() {
    let h = History {
        changes: vec![ChangeView {
            rollback_id: "187a-0002".into(),
            ts: "2026-11-22T08:20:08.5Z".into(),
            remedy: "link_up".into(),
            fault: "link_down".into(),
            subject: "eth1".into(),
            phase: "reverted".into(),
            last_ts: "2026-11-22T08:21:00.1Z".into(),
            error: Some("reverted by hand (set eth1 down)".into()),
        }],
        incidents: vec![IncidentView {
            fault: "link_down".into(),
            severity: "error".into(),
            subject: "eth1".into(),
            since: "2026-11-22T08:20:07.1Z".into(),
            cleared: Some("2026-11-22T08:20:09.0Z".into()),
            ..Default::default()
        }],
    };
    assert_eq!(
        history(&h),
        "changes (1)\n  2026-11-22T08:20:08Z  link_up            link_down                  eth1                   reverted     187a-0002  (reverted by hand (set eth1 down))\nincidents (1)\n  2026-11-22T08:20:07Z  link_down                  error    eth1                   cleared 2026-11-22T08:20:09Z\n"
    );
}
