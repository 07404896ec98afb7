//! What `xdp_source_limit` and `xdp_port_limit` share: the change they plan (one limit entry
//! per key, each inverted by deleting it, verified by reading it back), the namespace rule,
//! and the functions behind [`Action::XdpLimitInsert`], [`Action::XdpLimitRemove`] and
//! [`Verify::XdpLimitPresent`].
use serde_json::json;

use super::action::{Action, Verify};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, PlannedChange};
use crate::faults::Finding;
use crate::probes::limits::{LimitKey, LimitSpec};

/// Why a finding in namespace `netns` cannot be limited by the XDP program of `xdp_netns`.
pub(crate) fn netns_mismatch(netns: Option<u32>, xdp_netns: Option<u32>) -> Option<String> {
    match netns {
        None => None,
        Some(n) if Some(n) == xdp_netns => None,
        Some(n) => Some(format!(
            "the fault is in network namespace {n}; guardian's XDP program sees only the interfaces of its own namespace{}",
            xdp_netns.map(|o| format!(" ({o})")).unwrap_or_default()
        )),
    }
}

/// What a limit touches: its source address or its port.
fn limit_target(key: LimitKey) -> crate::model::Target {
    match key {
        LimitKey::Src { addr, .. } => crate::model::Target::Src(addr),
        LimitKey::Port { port } => crate::model::Target::Port(port),
    }
}

/// A limit change: one entry per key, applied together, each inverted by deleting it.
pub(crate) fn limit_change(
    remedy: RemedyId,
    f: &Finding,
    specs: Vec<LimitSpec>,
    ttl_ms: u64,
    effect: Effect,
) -> PlannedChange {
    let targets = specs.iter().map(|s| limit_target(s.key)).collect();
    let verify = Verify::All {
        checks: specs
            .iter()
            .map(|s| Verify::XdpLimitPresent { key: s.key })
            .collect(),
    };
    let limits: Vec<_> = specs
        .iter()
        .map(|s| json!({"key": s.key.target(), "rate_pps": s.rate_pps, "burst": s.burst, "ttl_ms": s.ttl_ms}))
        .collect();
    let (apply, inverse) = Action::all(
        specs
            .into_iter()
            .map(|s| {
                (
                    Action::XdpLimitInsert(s),
                    Action::XdpLimitRemove { key: s.key },
                )
            })
            .collect(),
    );
    PlannedChange {
        remedy,
        subject: f.subject.clone(),
        targets,
        apply,
        inverse,
        verify,
        effect,
        lifetime: Lifetime::Ttl { ms: ttl_ms },
        before: json!({"limits": []}),
        after: json!({ "limits": limits }),
    }
}
