//! Unit tests of `tls_handshake_failure`'s decisions.
use super::*;
use crate::model::tls::HandshakeCounts;
use crate::model::FaultState::{self, Cleared as C, Opened as O};
use serde_json::Value;

fn cfg() -> Config {
    Config {
        window_ms: 10_000,
        hysteresis: Hysteresis::new(0, 2_000, 10_000),
        ..Default::default()
    }
}

fn hs(role: Role, peer: &str, pid: u32) -> HandshakeCounts {
    HandshakeCounts {
        role,
        addr: "10.0.0.1".into(),
        port: 8443,
        peer: peer.into(),
        pid,
        comm: "nginx".into(),
        ok: 0,
        failed: 0,
        aborted: 0,
    }
}

/// One sample per second; each second adds (ok, failed, aborted) to each of the given
/// (role, peer, pid) keys in turn.
fn run(
    cfg: Config,
    keys: &[(Role, &str, u32)],
    secs: &[(u64, u64, u64)],
) -> (Vec<(usize, String, FaultState)>, Vec<Value>) {
    let mut d = TlsHandshakeFailure::new(cfg);
    let t0 = Instant::now();
    let mut cs: Vec<HandshakeCounts> = keys.iter().map(|k| hs(k.0, k.1, k.2)).collect();
    let (mut out, mut ev) = (vec![], vec![]);
    for (i, &(ok, failed, aborted)) in secs.iter().enumerate() {
        for c in &mut cs {
            c.ok += ok;
            c.failed += failed;
            c.aborted += aborted;
        }
        let s = TlsSample {
            netns: 9,
            handshakes: cs.clone(),
            certs: vec![],
        };
        for f in d.observe(&Input::Tls(s), t0 + Duration::from_secs(i as u64)) {
            if f.state == O {
                ev.push(f.evidence.json());
            }
            out.push((i, f.key.clone(), f.state));
        }
    }
    (out, ev)
}

const SERVER: (Role, &str, u32) = (Role::Server, "10.0.0.2", 10);

#[test]
fn opens_naming_the_listener_and_the_peers() {
    let keys = [SERVER, (Role::Server, "10.0.0.3", 11)];
    let (got, ev) = run(cfg(), &keys, &[(1, 1, 0), (1, 1, 1)]);
    assert_eq!(
        got,
        vec![(0, key(9, Role::Server, "10.0.0.1:8443"), O)],
        "{got:?}"
    );
    let ev = &ev[0];
    assert_eq!(ev["listener"], "10.0.0.1:8443");
    assert_eq!(ev["role"], "server");
    assert_eq!((ev["ok"].as_u64(), ev["failed"].as_u64()), (Some(2), Some(2)));
    assert_eq!(ev["ratio"], 0.5);
    assert_eq!(ev["peers"][0]["peer"], "10.0.0.2");
    assert_eq!(ev["peers"][0]["failed"], 1);
    assert_eq!(ev["peers"][1]["peer"], "10.0.0.3");
    assert_eq!(ev["processes"].as_array().map(Vec::len), Some(2));
}

#[test]
fn aborts_below_the_ratio_or_the_rate_are_silent() {
    // Health checks closing before the end: aborts only.
    assert!(run(cfg(), &[SERVER], &[(5, 0, 5); 12]).0.is_empty());
    // Exactly 10 %: not above.
    assert!(run(cfg(), &[SERVER], &[(9, 1, 0); 12]).0.is_empty());
    // 100 % failures but one in 20 s: below 0.2/s over 10 s.
    let mut s = vec![(0, 1, 0)];
    s.extend(vec![(0, 0, 0); 19]);
    let slow = Config {
        min_per_s: 0.2,
        ..cfg()
    };
    assert!(run(slow.clone(), &[SERVER], &s).0.is_empty());
    // Two in the same second reach it.
    s[0] = (0, 2, 0);
    assert_eq!(run(slow, &[SERVER], &s).0.len(), 2);
}

#[test]
fn roles_are_separate_subjects_and_clear() {
    let keys = [SERVER, (Role::Client, "10.0.0.9", 20)];
    let mut s = vec![(0, 2, 0); 2];
    s.extend(vec![(10, 0, 0); 14]);
    let (got, _) = run(cfg(), &keys, &s);
    let opened: Vec<&str> = got
        .iter()
        .filter(|g| g.2 == O)
        .map(|g| g.1.as_str())
        .collect();
    assert_eq!(
        opened,
        vec![
            "tls_handshake_failure:9:client:10.0.0.1:8443",
            "tls_handshake_failure:9:server:10.0.0.1:8443"
        ]
    );
    assert_eq!(got.iter().filter(|g| g.2 == C).count(), 2, "{got:?}");
}

#[test]
fn names_at_most_ten_peers() {
    let peers: Vec<String> = (0..12).map(|i| format!("10.0.1.{i}")).collect();
    let keys: Vec<(Role, &str, u32)> = peers.iter().map(|p| (Role::Server, p.as_str(), 10)).collect();
    let (_, ev) = run(cfg(), &keys, &[(0, 1, 0)]);
    assert_eq!(ev[0]["peers"].as_array().map(Vec::len), Some(MAX_PEERS));
    assert_eq!(ev[0]["peers_omitted"], 2);
    assert_eq!(ev[0]["failed"], 12);
}
