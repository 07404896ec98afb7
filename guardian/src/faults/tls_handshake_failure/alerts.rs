//! The plaintext TLS alerts of one listener over the window. The kernel counts the alerts
//! local processes wrote, per writer's role (`AlertCounts`); a listener seen as `role` lists
//! those its own end wrote (`sent`) and those the other end wrote when that end is a local
//! process of the same namespace (`received`).
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use guardian_common::http::tls_alert_name;
use guardian_common::tls::ALERT_FATAL;

use super::evidence::{Alert, Direction, Peer};
use crate::faults::window::Windows;
use crate::model::tls::{AlertCounts, Role};

/// Alert entries named in the evidence, at most.
pub const MAX_ALERTS: usize = 20;

/// One alert series: (writer's role, listener, peer, level, code).
pub type Series = (Role, String, String, u8, u8);

/// The cumulative value of every series in a sample.
pub fn values(alerts: &[AlertCounts]) -> Vec<(Series, u64)> {
    let mut v: HashMap<Series, u64> = HashMap::new();
    for a in alerts {
        *v.entry((a.role, a.listener(), a.peer.clone(), a.level, a.code))
            .or_default() += a.count;
    }
    v.into_iter().collect()
}

/// The listeners the alerts make known, as (role, name, addr, port): the writer's end, and
/// the other end too when both share one address (loopback): then it is a local process of
/// the namespace as well, whose handshake the alert ended. A listener the other end's own
/// signals made known (OpenSSL handshakes, its own alerts) lists them as `received` anyway.
pub fn listeners(alerts: &[AlertCounts]) -> BTreeSet<(Role, String, String, u16)> {
    let mut out = BTreeSet::new();
    for a in alerts.iter().filter(|a| !a.addr.is_empty()) {
        out.insert((a.role, a.listener(), a.addr.clone(), a.port));
        if a.peer == a.addr {
            out.insert((other(a.role), a.listener(), a.addr.clone(), a.port));
        }
    }
    out
}

fn other(r: Role) -> Role {
    match r {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

/// The alerts of listener (`role`, `name`) in the window, most first; entries with no new
/// alert are left out.
pub fn in_window(
    w: &Windows<Series>,
    role: Role,
    name: &str,
    now: Instant,
    window: Duration,
) -> Vec<Alert> {
    let mut out: Vec<Alert> = w
        .keys()
        .filter(|k| k.1 == name)
        .filter_map(|k| {
            let count = w.delta(k, now, window).map_or(0, |(v, _)| v);
            (count > 0).then(|| Alert {
                alert: tls_alert_name(k.4),
                code: k.4,
                count,
                direction: match k.0 == role {
                    true => Direction::Sent,
                    false => Direction::Received,
                },
                level: match k.3 {
                    ALERT_FATAL => "fatal",
                    _ => "warning",
                },
                peer: k.2.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (a.code, a.direction, &a.peer).cmp(&(b.code, b.direction, &b.peer)))
    });
    out
}

/// Failures per peer when fatal alerts are the only signal: each fatal alert, sent or
/// received, ended one handshake.
pub fn peers(alerts: &[Alert]) -> Vec<Peer> {
    let mut by: HashMap<&str, u64> = HashMap::new();
    for a in alerts.iter().filter(|a| a.level == "fatal") {
        *by.entry(&a.peer).or_default() += a.count;
    }
    by.into_iter()
        .map(|(peer, failed)| Peer {
            aborted: 0,
            failed,
            ok: 0,
            peer: peer.to_string(),
        })
        .collect()
}

/// Fatal alerts in `alerts`.
pub fn fatal(alerts: &[Alert]) -> u64 {
    alerts
        .iter()
        .filter(|a| a.level == "fatal")
        .map(|a| a.count)
        .sum()
}
