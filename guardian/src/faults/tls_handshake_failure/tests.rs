//! Unit tests of `tls_handshake_failure`'s decisions.
use super::*;
use crate::model::tls::{AlertCounts, HandshakeCounts};
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
            alerts: vec![],
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

fn alert(role: Role, addr: &str, peer: &str, level: u8, code: u8) -> AlertCounts {
    AlertCounts {
        role,
        addr: addr.into(),
        port: 5556,
        peer: peer.into(),
        level,
        code,
        count: 0,
    }
}

/// One sample per second: each second adds `per_s[i]` to alert `i`; `hs` are OpenSSL
/// handshake keys that add (ok, failed, aborted) each second.
fn run_alerts(
    alerts: &[AlertCounts],
    per_s: &[u64],
    hs: &[(HandshakeCounts, (u64, u64, u64))],
    secs: usize,
) -> (Vec<(usize, String, FaultState)>, Vec<Value>) {
    let mut d = TlsHandshakeFailure::new(cfg());
    let t0 = Instant::now();
    let mut a = alerts.to_vec();
    let mut h: Vec<HandshakeCounts> = hs.iter().map(|x| x.0.clone()).collect();
    let (mut out, mut ev) = (vec![], vec![]);
    for i in 0..secs {
        for (c, n) in a.iter_mut().zip(per_s) {
            c.count += n;
        }
        for (c, (_, (ok, f, ab))) in h.iter_mut().zip(hs) {
            (c.ok, c.failed, c.aborted) = (c.ok + ok, c.failed + f, c.aborted + ab);
        }
        let s = TlsSample {
            netns: 9,
            handshakes: h.clone(),
            alerts: a.clone(),
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

#[test]
fn fatal_alerts_alone_open_a_listener_without_openssl() {
    // A GnuTLS server refusing a remote client's version: 2 protocol_version a second.
    let a = [alert(Role::Server, "10.0.0.1", "10.0.0.2", 2, 70)];
    let (got, ev) = run_alerts(&a, &[2], &[], 2);
    assert_eq!(
        got,
        vec![(0, key(9, Role::Server, "10.0.0.1:5556"), O)],
        "{got:?}"
    );
    let ev = &ev[0];
    assert_eq!(ev["basis"], "alerts");
    assert_eq!((ev["failed"].as_u64(), ev["ok"].as_u64()), (Some(2), Some(0)));
    assert_eq!(ev["ratio"], 1.0);
    assert_eq!(ev["alerts"][0]["alert"], "protocol_version");
    assert_eq!(ev["alerts"][0]["code"], 70);
    assert_eq!(ev["alerts"][0]["level"], "fatal");
    assert_eq!(ev["alerts"][0]["direction"], "sent");
    assert_eq!(ev["alerts"][0]["count"], 2);
    assert_eq!(ev["peers"][0]["peer"], "10.0.0.2");
    assert_eq!(ev["peers"][0]["failed"], 2);
    // The remote client is not local: no client-side listener.
    assert_eq!(got.len(), 1);
}

#[test]
fn warnings_are_listed_not_counted() {
    // user_canceled warnings only: no failure.
    let w = [alert(Role::Client, "10.0.0.1", "10.0.0.2", 1, 90)];
    assert!(run_alerts(&w, &[5], &[], 12).0.is_empty());
    // Next to a fatal one, listed as a warning; only the fatal counts.
    let a = [w[0].clone(), alert(Role::Client, "10.0.0.1", "10.0.0.2", 2, 48)];
    let (_, ev) = run_alerts(&a, &[3, 1], &[], 1);
    assert_eq!(ev[0]["failed"], 1);
    assert_eq!(ev[0]["alerts"][0]["alert"], "user_canceled");
    assert_eq!(ev[0]["alerts"][0]["level"], "warning");
    assert_eq!(ev[0]["alerts"][1]["alert"], "unknown_ca");
}

#[test]
fn loopback_alerts_show_on_both_ends() {
    // Both ends on 127.0.0.1: the client's unknown_ca is sent by the client, received by the
    // server (a GnuTLS server: alerts are all it has).
    let a = [alert(Role::Client, "127.0.0.1", "127.0.0.1", 2, 48)];
    let (got, ev) = run_alerts(&a, &[1], &[], 1);
    let keys: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "tls_handshake_failure:9:client:127.0.0.1:5556",
            "tls_handshake_failure:9:server:127.0.0.1:5556"
        ]
    );
    assert_eq!(ev[0]["alerts"][0]["direction"], "sent");
    assert_eq!(ev[1]["alerts"][0]["direction"], "received");
    assert_eq!(ev[1]["failed"], 1);
}

#[test]
fn openssl_handshakes_keep_their_counts_and_list_the_alerts() {
    // An OpenSSL client (uprobes: 1 ok and 1 failure a second) whose local server sends
    // handshake_failure: the counts stay the handshakes', the alert is listed as received.
    let mut c = hs(Role::Client, "10.0.0.2", 20);
    c.port = 5556;
    let a = [alert(Role::Server, "10.0.0.1", "10.0.0.2", 2, 40)];
    let (got, ev) = run_alerts(&a, &[1], &[(c, (1, 1, 0))], 2);
    assert_eq!(got.len(), 2, "{got:?}");
    let client = ev.iter().find(|e| e["role"] == "client").unwrap();
    assert_eq!(client["basis"], "handshakes");
    assert_eq!((client["ok"].as_u64(), client["failed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(client["alerts"][0]["alert"], "handshake_failure");
    assert_eq!(client["alerts"][0]["direction"], "received");
    let server = ev.iter().find(|e| e["role"] == "server").unwrap();
    assert_eq!(server["basis"], "alerts");
    assert_eq!(server["alerts"][0]["direction"], "sent");
}

/// One sample per second with the cumulative count of `a` given per second (`min_per_s`
/// 0.2: 2 alerts over the 10 s window).
fn cumulative(a: &AlertCounts, counts: &[u64]) -> Vec<(usize, FaultState)> {
    let mut d = TlsHandshakeFailure::new(Config {
        min_per_s: 0.2,
        ..cfg()
    });
    let t0 = Instant::now();
    let mut out = vec![];
    for (i, n) in counts.iter().enumerate() {
        let mut x = a.clone();
        x.count = *n;
        let s = TlsSample {
            netns: 9,
            alerts: vec![x],
            ..Default::default()
        };
        let now = t0 + Duration::from_secs(i as u64);
        out.extend(d.observe(&Input::Tls(s), now).into_iter().map(|f| (i, f.state)));
    }
    out
}

#[test]
fn alerts_below_the_rate_are_silent_and_clear() {
    let a = alert(Role::Server, "10.0.0.1", "10.0.0.2", 2, 42);
    // One alert in 20 s is below 0.2/s over 10 s.
    assert!(cumulative(&a, &[1; 20]).is_empty());
    // Three at once open it; out of the window at 10 s, cleared 2 s after that.
    let got = cumulative(&a, &[3; 16]);
    assert_eq!(got.first(), Some(&(0, O)), "{got:?}");
    assert_eq!(got.last(), Some(&(12, C)), "{got:?}");
}

#[test]
fn names_at_most_twenty_alerts() {
    let a: Vec<AlertCounts> = (0..25)
        .map(|i| alert(Role::Server, "10.0.0.1", &format!("10.0.2.{i}"), 2, 40))
        .collect();
    let (_, ev) = run_alerts(&a, &[1; 25], &[], 1);
    assert_eq!(ev[0]["alerts"].as_array().map(Vec::len), Some(alerts::MAX_ALERTS));
    assert_eq!(ev[0]["alerts_omitted"], 5);
    assert_eq!(ev[0]["failed"], 25);
    assert_eq!(ev[0]["peers"].as_array().map(Vec::len), Some(MAX_PEERS));
}

/// The evidence's failed count and the alert count after each sample, for samples given as
/// they would be read from the kernel maps (entries can vanish and come back from zero).
fn failed_per_sample(samples: &[(Vec<HandshakeCounts>, Vec<AlertCounts>)]) -> Vec<(u64, u64)> {
    let mut d = TlsHandshakeFailure::new(Config {
        hysteresis: Hysteresis::new(0, 2_000, 0),
        ..cfg()
    });
    let t0 = Instant::now();
    let mut out = Vec::new();
    for (i, (handshakes, alerts)) in samples.iter().enumerate() {
        let s = TlsSample {
            netns: 9,
            handshakes: handshakes.clone(),
            alerts: alerts.clone(),
            certs: vec![],
        };
        let f = d.observe(&Input::Tls(s), t0 + Duration::from_secs(i as u64));
        let e = f.iter().find(|f| f.state != C).map(|f| f.evidence.json());
        let e = e.unwrap_or_default();
        let alerts = e["alerts"].as_array().into_iter().flatten();
        let sent: u64 = alerts.map(|a| a["count"].as_u64().unwrap()).sum();
        out.push((e["failed"].as_u64().unwrap_or(0), sent));
    }
    out
}

#[test]
fn an_evicted_or_pruned_entry_neither_loses_nor_repeats_its_counts() {
    // Two workers of one server fail with the same peer, one handshake each per second.
    // Worker 11's entry is evicted at 2 s (missing from that sample, its failure there lost
    // with it) and made again from zero at 3 s: 2 + 1 + 2 + 2 + 2 = 9 failures by 4 s.
    let mut a = hs(Role::Server, "10.0.0.2", 10);
    let mut b = hs(Role::Server, "10.0.0.2", 11);
    let mut samples = Vec::new();
    for i in 0..5 {
        a.failed += 1;
        b.failed = if i == 3 { 1 } else { b.failed + 1 };
        let both = match i {
            2 => vec![a.clone()],
            _ => vec![a.clone(), b.clone()],
        };
        samples.push((both, vec![]));
    }
    let failed: Vec<u64> = failed_per_sample(&samples).iter().map(|x| x.0).collect();
    assert_eq!(failed, [2, 4, 5, 7, 9]);

    // A GnuTLS server's fatal alerts, 2 a second; its entry pruned after 1 s and made again
    // within the same tick (the value went down): 2 + 2 + 2 + 2 = 8 alerts by 3 s.
    let mut x = alert(Role::Server, "10.0.0.1", "10.0.0.2", 2, 70);
    let mut samples = Vec::new();
    for i in 0..4 {
        x.count = if i == 2 { 2 } else { x.count + 2 };
        samples.push((vec![], vec![x.clone()]));
    }
    assert_eq!(
        failed_per_sample(&samples),
        [(2, 2), (4, 4), (6, 6), (8, 8)]
    );
}

#[test]
fn a_namespace_whose_entries_were_all_deleted_starts_over() {
    // 3 alerts, then nothing for longer than the window: the sampler deletes the idle entry
    // (an empty sample at 12 s); 2 alerts at 13 s make it again, counted in full.
    let mut x = alert(Role::Server, "10.0.0.1", "10.0.0.2", 2, 70);
    x.count = 3;
    let mut samples: Vec<_> = (0..12).map(|_| (vec![], vec![x.clone()])).collect();
    samples.push((vec![], vec![]));
    x.count = 2;
    samples.push((vec![], vec![x]));
    let mut want = vec![(3, 3); 10];
    want.extend([(0, 0), (0, 0), (0, 0), (2, 2)]);
    assert_eq!(failed_per_sample(&samples), want);
}
