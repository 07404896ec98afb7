//! Which HTTP programs `guardian run --http` attaches, in order of cost:
//! - plaintext: the packet programs (`http_skb.rs`); where the kernel refuses them, the
//!   syscall hook (`http.rs`) reads plaintext instead;
//! - TLS (unless `--http-no-tls`): the OpenSSL uprobes, which need the syscall hook for the
//!   socket and the request start (guardian-ebpf/src/tls.rs).
//!
//! The syscall hook is the expensive one (every syscall of every task enters it), so it is
//! attached only when TLS or the fallback needs it.
use aya::Btf;
use guardian_common::http::HttpOffsets;

use super::offsets::OffsetError;
use super::{http, http_skb, uprobe, Probes};

impl Probes {
    pub(super) fn attach_http(
        &mut self,
        tls: bool,
        offsets: Result<HttpOffsets, OffsetError>,
        btf: Option<&Btf>,
    ) {
        let packets = http_skb::attach(&mut self.ebpf);
        if let Err(e) = &packets {
            tracing::warn!(error = %e, "plaintext HTTP through the syscall hook, not the packet programs");
        }
        let plain_at_syscalls = packets.is_err();
        let hooks = syscall_hook_needed(tls, plain_at_syscalls).then(|| {
            match offsets {
                Ok(o) => http::attach(&mut self.ebpf, &o, btf, &mut self.tracepoints),
                Err(e) => Err(e.into()),
            }
            .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)))
        });
        let hooks = match hooks {
            Some(Ok(h)) => {
                if let Err(e) = http_skb::set_plain_at_syscalls(&mut self.ebpf, plain_at_syscalls) {
                    tracing::warn!(error = %e, "cannot tell the syscall hook who reads plaintext HTTP");
                }
                self.http_hooks = Some(h);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        };
        let http = plaintext(packets.as_ref().map(|_| ()), hooks.as_ref().map(|_| ()));
        if let Err(e) = &http {
            tracing::warn!(error = %e, "HTTP status per service is unavailable");
        }
        if tls {
            let t = match &hooks {
                Ok(()) => {
                    let (libs, seen) = uprobe::discover();
                    uprobe::attach(&mut self.ebpf, &libs)
                        .map(|mut a| {
                            a.seen = seen;
                            a
                        })
                        .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)))
                }
                Err(e) => Err(format!("the syscall hook TLS needs is not attached: {e}")),
            };
            if let Err(e) = &t {
                tracing::warn!(error = %e, "HTTP over TLS (OpenSSL uprobes) is unavailable");
            }
            // As before: TLS is reported only where plaintext HTTP works at all.
            if http.is_ok() {
                self.tls = Some(t);
            }
        }
        self.http_packets = Some(packets);
        self.http = Some(http);
    }
}

/// Whether the syscall hook is attached: for TLS, or for plaintext where the packet programs
/// were refused.
fn syscall_hook_needed(tls: bool, plain_at_syscalls: bool) -> bool {
    tls || plain_at_syscalls
}

/// Whether plaintext HTTP is read at all: by the packet programs, else by the syscall hook
/// (which, when not needed, is not attached and `Ok`).
fn plaintext(packets: Result<(), &String>, hooks: Result<(), &String>) -> Result<(), String> {
    match (packets, hooks) {
        (Ok(()), _) | (Err(_), Ok(())) => Ok(()),
        (Err(p), Err(h)) => Err(format!("{p}; and the syscall hook: {h}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syscall_hook_only_for_tls_or_the_fallback() {
        assert!(
            !syscall_hook_needed(false, false),
            "--http-no-tls with packets"
        );
        assert!(syscall_hook_needed(true, false), "TLS needs it");
        assert!(
            syscall_hook_needed(false, true),
            "packets refused: plaintext needs it"
        );
    }

    #[test]
    fn plaintext_is_read_by_either_path() {
        let refused = "no cgroup v2".to_string();
        let hook = "BTF lacks pt_regs".to_string();
        assert_eq!(
            plaintext(Ok(()), Err(&hook)),
            Ok(()),
            "TLS lost, plaintext kept"
        );
        assert_eq!(plaintext(Err(&refused), Ok(())), Ok(()));
        let e = plaintext(Err(&refused), Err(&hook)).unwrap_err();
        assert!(
            e.contains("no cgroup v2") && e.contains("BTF lacks pt_regs"),
            "{e}"
        );
    }
}
