//! `sockopt_failfast` policies in the sock_ops map:
//! [`Action::FailfastInsert`](crate::remedy::Action::FailfastInsert) and its inverse
//! [`Action::FailfastRemove`](crate::remedy::Action::FailfastRemove), verified by
//! [`Verify::FailfastPresent`](crate::remedy::Verify::FailfastPresent). No precondition.
use crate::probes::sockops;
use crate::remedy::error::RemedyError;
use crate::remedy::failfast_policy::{Dst, Policy};
use crate::remedy::kernel::Kernel;

/// The map key for `d`: the namespace's netns cookie, read inside it.
fn resolve(k: &mut Kernel, d: &Dst) -> Result<guardian_common::failfast::FailfastKey, RemedyError> {
    let path = k.netns_path(d.netns)?;
    let cookie = sockops::netns_cookie(path.as_deref())
        .map_err(|e| RemedyError::io(format!("reading the netns cookie of {d}"), e))?;
    Ok(sockops::key(cookie, d.addr, d.port))
}

fn map(k: &mut Kernel) -> Result<&mut sockops::FailfastMap, RemedyError> {
    k.maps.failfast.as_mut().ok_or_else(|| {
        RemedyError::Unavailable(format!(
            "the sock_ops program is not attached ({})",
            sockops::unavailable().unwrap_or_else(|| "no daemon maps in this process".into())
        ))
    })
}

fn map_err(what: String, e: aya::maps::MapError) -> RemedyError {
    RemedyError::io(what, std::io::Error::other(e.to_string()))
}

pub async fn insert(k: &mut Kernel, p: &Policy) -> Result<(), RemedyError> {
    let key = resolve(k, &p.dst)?;
    let value = guardian_common::failfast::FailfastPolicy {
        syn_count: p.syn_count,
        user_timeout_ms: p.user_timeout_ms,
        expires_ns: match p.ttl_ms {
            0 => 0,
            ms => sockops::monotonic_ns() + ms * 1_000_000,
        },
        hits: 0,
        errors: 0,
    };
    map(k)?
        .insert(&key, &value)
        .map_err(|e| map_err(format!("inserting the fail-fast policy {p}"), e))
}

/// Removes the policy; a policy already gone (or whose namespace is gone, taking every socket
/// it could apply to with it) is not an error. Without the maps (`guardian rollback`, which
/// runs with the daemon stopped) there is nothing to remove: the policies lived in the map of
/// the daemon's sock_ops link, which closed with it.
pub async fn remove(k: &mut Kernel, d: &Dst) -> Result<(), RemedyError> {
    if k.maps.failfast.is_none() {
        tracing::info!(dst = %d, "no fail-fast map in this process: the policy went with the daemon that installed it");
        return Ok(());
    }
    let key = match resolve(k, d) {
        Ok(key) => key,
        Err(RemedyError::Unavailable(why)) => {
            tracing::info!(dst = %d, %why, "fail-fast policy left to its kernel TTL");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    map(k)?
        .remove(&key)
        .map(|_| ())
        .map_err(|e| map_err(format!("removing the fail-fast policy for {d}"), e))
}

/// A live (unexpired) policy with exactly these settings is in the map.
pub async fn present(k: &mut Kernel, p: &Policy) -> Result<bool, RemedyError> {
    let key = resolve(k, &p.dst)?;
    let got = map(k)?
        .get(&key)
        .map_err(|e| map_err(format!("reading the fail-fast policy for {}", p.dst), e))?;
    Ok(got.is_some_and(|v| {
        v.syn_count == p.syn_count
            && v.user_timeout_ms == p.user_timeout_ms
            && (v.expires_ns == 0 || v.expires_ns > sockops::monotonic_ns())
    }))
}
