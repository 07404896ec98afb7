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
        let hooks = (tls || plain_at_syscalls).then(|| {
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
        // Plaintext is covered by either path.
        let http = match (&packets, &hooks) {
            (Ok(_), _) | (Err(_), Ok(())) => Ok(()),
            (Err(p), Err(h)) => Err(format!("{p}; and the syscall hook: {h}")),
        };
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
