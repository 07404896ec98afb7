//! Sysctls: [`Action::SetSysctl`](crate::remedy::Action::SetSysctl) (its inverse is the same
//! action with the value read at planning time) and
//! [`Verify::Sysctl`](crate::remedy::Verify::Sysctl). No precondition: only keys on
//! [`crate::sysctl::ALLOWED`] are ever written (checked again by `sysctl::write`).
use crate::remedy::error::RemedyError;
use crate::remedy::kernel::Kernel;
use crate::sysctl;

/// [`Action::SetSysctl`](crate::remedy::Action::SetSysctl): writes `key = value` in namespace
/// `netns` (None or the daemon's own: no namespace switch).
pub async fn apply(
    k: &mut Kernel,
    netns: Option<u32>,
    key: &str,
    value: &str,
) -> Result<(), RemedyError> {
    let ns = k.netns_path(netns)?;
    sysctl::write(ns.as_deref(), key, value)
        .map_err(|e| RemedyError::io(format!("sysctl -w {key}={value}"), e))
}

/// [`Verify::Sysctl`](crate::remedy::Verify::Sysctl): `key` reads `value` (whitespace-normalized)
/// in namespace `netns`.
pub async fn check(
    k: &mut Kernel,
    netns: Option<u32>,
    key: &str,
    value: &str,
) -> Result<bool, RemedyError> {
    let ns = k.netns_path(netns)?;
    let now = sysctl::read(ns.as_deref(), key)
        .map_err(|e| RemedyError::io(format!("sysctl {key}"), e))?;
    Ok(now == sysctl::normalize(value))
}
