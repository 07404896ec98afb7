//! guardian's XDP SYN limits: [`Action::XdpLimitInsert`](crate::remedy::Action::XdpLimitInsert)
//! and its inverse [`Action::XdpLimitRemove`](crate::remedy::Action::XdpLimitRemove), verified
//! by [`Verify::XdpLimitPresent`](crate::remedy::Verify::XdpLimitPresent). No precondition:
//! inserting renews a limit already there.
use aya::maps::MapError;

use crate::probes::limits::{LimitKey, LimitSpec, Limits};
use crate::remedy::error::RemedyError;
use crate::remedy::kernel::Kernel;

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
