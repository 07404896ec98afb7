//! `sockopt_failfast`: new connects to a destination that times out make the application
//! wait ~127 s each (6 SYN retransmissions). This remedy installs a policy for that destination
//! in the namespace where the fault is; guardian's sock_ops program
//! (`guardian-ebpf/src/sockops.rs`) then gives every new connect to it a small SYN budget
//! (`TCP_SYNCNT`) and handshake timeout (`TCP_USER_TIMEOUT`), so it fails in seconds.
//! Inverse: remove the policy. Temporary: the policy carries a TTL, also enforced in the
//! kernel (an expired policy stops applying even if nobody removes it).
//!
//! Timing with the defaults (measured on this kernel, initial SYN RTO 1 s): SYN at 0 s, one
//! retransmission at 1 s (`syn_count = 1`); the next RTO would double to 2 s and give up at 3 s
//! (measured 3.07 s), but `TCP_USER_TIMEOUT = 2500` clamps that RTO, so the connect fails
//! with ETIMEDOUT at ~2.5 s. (`syn_count = 2` alone: 7 s; `user_timeout_ms = 2000`: 2.0 s.)
//! The user timeout applies to the handshake only: once established, the program restores the
//! socket's previous value. Neither option is ever raised above the application's own.
//!
//! Evidence rule (#14): the policy shortens everyone's connects to the destination, root's
//! included, so it is planned only when the network is the cause: at least `min_timeouts` of
//! the failures in the fault's window ended with ETIMEDOUT after SYN retransmissions, from at
//! least `min_uids` different uids. Connects the application closed itself (an unprivileged
//! user's `IP_TTL=1` + close) are not counted, and one uid's timeouts alone are reported only.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use crate::faults::{connect_timeout_cascade, FaultId, Finding};
use crate::probes::sockops;

pub use super::failfast_policy::{Dst, Policy};

pub const NAME: RemedyId = RemedyId::SockoptFailfast;
/// The kernel's limit for TCP_SYNCNT (MAX_TCP_SYNCNT).
const MAX_SYNCNT: u32 = 127;

/// `[remedies.sockopt_failfast]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SYN retransmissions a new connect to the destination gets (`TCP_SYNCNT`, 1..=127;
    /// 0 leaves it alone). 1: the connect gives up ~3 s after it started.
    pub syn_count: u32,
    /// Handshake timeout in ms (`TCP_USER_TIMEOUT` while in SYN_SENT; 0 leaves it alone).
    /// 2500 makes the connect fail at ~2.5 s, under the 3 s of `syn_count = 1`.
    pub user_timeout_ms: u32,
    /// How long the policy lives (ms); also enforced in the kernel.
    pub ttl_ms: u64,
    /// The cgroup v2 directory the sock_ops program attaches to; its connects and those of
    /// every cgroup below it are covered. Default: the cgroup v2 mount (`/sys/fs/cgroup`, or
    /// `/sys/fs/cgroup/unified` on hybrid systems).
    pub cgroup: Option<std::path::PathBuf>,
    /// Failed connects in the fault's window that must have ended with ETIMEDOUT (the network
    /// dropped the SYNs) before a policy is planned (1..=1000000).
    pub min_timeouts: u64,
    /// Different uids whose connects must have timed out (1..=1024). 1 lets one user's
    /// timeouts shorten every user's connects: a config choice, see docs/security.md.
    pub min_uids: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            syn_count: 1,
            user_timeout_ms: 2500,
            ttl_ms: 300_000,
            cgroup: None,
            min_timeouts: 10,
            min_uids: 2,
        }
    }
}

pub struct SockoptFailfast {
    cfg: Config,
    /// Why the sock_ops program is not attached, if it is not.
    unavailable: fn() -> Option<String>,
}

impl SockoptFailfast {
    pub fn new(cfg: Config) -> Self {
        SockoptFailfast {
            cfg,
            unavailable: sockops::unavailable,
        }
    }
}

impl Remedy for SockoptFailfast {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[connect_timeout_cascade::FAULT]
    }

    fn plan(&self, f: &Finding, _ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != connect_timeout_cascade::FAULT {
            return None;
        }
        let skip = |r: String| Some(Plan::Skip(r));
        let addr = f.subject.addr.as_deref().unwrap_or("");
        let Ok(addr) = addr.parse::<IpAddr>() else {
            return skip(format!(
                "no usable destination address in the finding ({addr:?})"
            ));
        };
        if addr.is_unspecified() || addr.is_multicast() {
            return skip(format!(
                "refusing a policy for the wildcard/multicast address {addr}"
            ));
        }
        let port = match f.subject.port {
            Some(p) if p != 0 => p,
            _ => return skip("no destination port in the finding".into()),
        };
        let c = &self.cfg;
        if let Some(why) = weak_evidence(c, &f.evidence) {
            return skip(why);
        }
        if (c.syn_count == 0 && c.user_timeout_ms == 0) || c.syn_count > MAX_SYNCNT {
            return skip(format!(
                "configuration sets nothing usable (syn_count {}, user_timeout_ms {})",
                c.syn_count, c.user_timeout_ms
            ));
        }
        if let Some(why) = (self.unavailable)() {
            return skip(format!("the sock_ops program is not attached: {why}"));
        }
        let dst = Dst {
            netns: f.netns,
            addr,
            port,
        };
        let policy = Policy {
            dst: dst.clone(),
            syn_count: c.syn_count,
            user_timeout_ms: c.user_timeout_ms,
            ttl_ms: c.ttl_ms,
        };
        let shown = dst_str(&dst);
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: vec![crate::model::Target::Dst(addr)],
            apply: Action::FailfastInsert(policy.clone()),
            inverse: Action::FailfastRemove(dst),
            verify: Verify::FailfastPresent(policy),
            effect: Effect::InPlace,
            lifetime: Lifetime::Ttl { ms: c.ttl_ms },
            before: json!({"dst": shown, "netns": f.netns, "policy": null}),
            after: json!({"dst": shown, "netns": f.netns, "policy": {
                "syn_count": c.syn_count, "user_timeout_ms": c.user_timeout_ms, "ttl_ms": c.ttl_ms,
            }}),
        })))
    }
}

/// Why the fault's evidence does not show the network timing connects out for more than one
/// user; None when it does.
fn weak_evidence(c: &Config, ev: &crate::faults::Evidence) -> Option<String> {
    let crate::faults::Evidence::ConnectTimeoutCascade(e) = ev else {
        return Some("no connect_timeout_cascade evidence in the finding".into());
    };
    if e.timed_out < c.min_timeouts {
        return Some(format!(
            "only {} of the {} failed connects timed out after SYN retransmissions (min_timeouts \
             {}); {} were abandoned by the application before any timeout: not evidence that \
             the network drops SYNs",
            e.timed_out, e.failed_connects, c.min_timeouts, e.abandoned
        ));
    }
    let n = e.timeout_uids.len();
    if n < c.min_uids as usize {
        let uids: Vec<String> = e.timeout_uids.iter().map(u32::to_string).collect();
        return Some(format!(
            "the {} timeouts came from {n} uid(s) [{}], fewer than min_uids {}: one user's \
             failures do not shorten other users' connects",
            e.timed_out,
            uids.join(", "),
            c.min_uids
        ));
    }
    None
}

fn dst_str(d: &Dst) -> String {
    Dst {
        netns: None,
        ..d.clone()
    }
    .to_string()
}

#[cfg(test)]
#[path = "sockopt_failfast_tests.rs"]
mod tests;
