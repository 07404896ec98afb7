//! What `xdp_source_limit` and `xdp_port_limit` share: the change they plan (one limit entry
//! per key, each inverted by deleting it, verified by reading it back), the namespace rule,
//! and the functions behind [`Action::XdpLimitInsert`], [`Action::XdpLimitRemove`] and
//! [`Verify::XdpLimitPresent`].
use aya::maps::MapError;
use serde_json::json;

use super::{Action, Effect, Kernel, Lifetime, PlannedChange, RemedyError, Verify};
use crate::faults::Finding;
use crate::probes::limits::{LimitKey, LimitSpec, Limits};

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

/// A limit change: one entry per key, applied together, each inverted by deleting it.
pub(crate) fn limit_change(
    remedy: &'static str,
    f: &Finding,
    specs: Vec<LimitSpec>,
    ttl_ms: u64,
    effect: Effect,
) -> PlannedChange {
    let targets = specs.iter().map(|s| s.key.target()).collect();
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

fn map_err(what: String) -> impl FnOnce(MapError) -> RemedyError {
    move |e| RemedyError::io(what, std::io::Error::other(e))
}

fn limits(k: &mut Kernel) -> Result<&mut Limits, RemedyError> {
    k.maps.limits.as_mut().ok_or_else(|| {
        RemedyError::Unavailable("guardian's XDP limit maps are not loaded (run with --xdp)".into())
    })
}

/// [`Action::XdpLimitInsert`]: installs or renews the limit.
pub async fn insert(k: &mut Kernel, s: &LimitSpec) -> Result<(), RemedyError> {
    limits(k)?
        .insert(s)
        .map_err(map_err(format!("inserting XDP limit {}", s.key)))
}

/// [`Action::XdpLimitRemove`]: deletes the limit; already gone (expired) is fine, and so is
/// a daemon without the XDP program (`guardian rollback` with the daemon stopped): the maps,
/// and every limit in them, went away with the program.
pub async fn remove(k: &mut Kernel, key: &LimitKey) -> Result<(), RemedyError> {
    let Some(limits) = k.maps.limits.as_mut() else {
        return Ok(());
    };
    limits
        .remove(key)
        .map(|_| ())
        .map_err(map_err(format!("removing XDP limit {key}")))
}

/// [`Verify::XdpLimitPresent`]: the limit is in the map and not expired.
pub async fn present(k: &mut Kernel, key: &LimitKey) -> Result<bool, RemedyError> {
    let e = limits(k)?
        .get(key)
        .map_err(map_err(format!("reading XDP limit {key}")))?;
    Ok(e.is_some_and(|e| !e.expired()))
}
