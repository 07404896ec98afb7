//! The `fq` qdisc the delay injector needs (it honours skb->tstamp, the earliest departure
//! time). `tc` with a fixed argument vector: the interface name is one argument, never shell
//! text.
use std::process::{Command, Stdio};

use super::InjectError;

/// `tc qdisc replace dev IFACE root fq` in the calling process's network namespace. The lab
/// runs it through `nsenter` (see `topology`): here it is for a thread already inside.
pub fn ensure_fq(iface: &str) -> Result<(), InjectError> {
    let out = Command::new("tc")
        .args(["qdisc", "replace", "dev", iface, "root", "fq"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| InjectError::Qdisc(format!("running tc: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InjectError::Qdisc(format!(
            "tc qdisc replace dev {iface} root fq: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
