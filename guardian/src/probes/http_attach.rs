//! Which HTTP programs `guardian run --http` attaches, in order of cost:
//! - plaintext: the packet programs (`http_skb.rs`); where the kernel refuses them, the
//!   syscall hook (`http.rs`) reads plaintext instead;
//! - TLS (unless `--http-no-tls`): the OpenSSL uprobes, which need a hook on the socket I/O
//!   for the socket and the request start (guardian-ebpf/src/tls.rs): the socket tracepoints
//!   (Linux 6.3+) where the packet programs read plaintext, else the syscall hook.
//!
//! The syscall hook is the expensive one (every syscall of every task enters it), so it is
//! attached only when the fallback needs it, or TLS on a kernel without the socket
//! tracepoints.
use aya::Btf;
use guardian_common::http::HttpOffsets;

use super::offsets::OffsetError;
use super::{http, http_skb, tls_record, tracepoint, uprobe, Probes};

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
        // TLS on the socket tracepoints where the kernel has them: then the syscall hook is
        // not attached at all.
        let sockets = match (sockets_wanted(tls, plain_at_syscalls), &offsets, btf) {
            (true, Ok(_), Some(btf)) => match http::attach_sockets(&mut self.ebpf, btf) {
                Ok(h) => Some(h),
                Err(e) => {
                    let e = crate::errors::sentence(&anyhow::Error::from(e));
                    tracing::info!(reason = %e, "TLS through the syscall hook, not the socket tracepoints (Linux 6.3+)");
                    None
                }
            },
            _ => None,
        };
        let hooks = match sockets {
            Some(h) => Some(Ok(h)),
            None => syscall_hook_needed(tls, plain_at_syscalls).then(|| {
                match offsets {
                    Ok(o) => http::attach(&mut self.ebpf, &o, btf, &mut self.tracepoints),
                    Err(e) => Err(e.into()),
                }
                .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)))
            }),
        };
        // Whether the syscall hook reads plaintext where it must: on the fallback, only once
        // its switch is set (the map starts at 0, which is also what the packet path wants).
        let mut plain_hook = Ok(());
        let hooks = match hooks {
            Some(Ok(h)) => {
                if let Err(e) = http_skb::set_plain_at_syscalls(&mut self.ebpf, plain_at_syscalls) {
                    let e = format!("cannot switch the syscall hook to plaintext HTTP: {e}");
                    tracing::warn!(error = %e, "the syscall hook's plaintext switch is not set");
                    plain_hook = switched(plain_at_syscalls, e);
                }
                self.http2 = Some(http::set_h2(&mut self.ebpf, &h));
                if let Some(Err(e)) = &self.http2 {
                    tracing::warn!(error = %e, "HTTP/2 over TLS is not followed");
                }
                if let Err(e) = http::set_alerts(&mut self.ebpf, &h) {
                    tracing::warn!(error = %e, "plaintext TLS alerts are not counted");
                }
                self.http_hooks = Some(h);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        };
        let http = plaintext(
            packets.as_ref().map(|_| ()),
            hooks
                .as_ref()
                .map(|_| ())
                .and(plain_hook.as_ref().map(|_| ())),
        );
        if let Err(e) = &http {
            tracing::warn!(error = %e, "HTTP status per service is unavailable");
        }
        if tls {
            let mut t = match &hooks {
                Ok(()) => {
                    let (libs, mut seen) = uprobe::discover();
                    uprobe::mark_found(&mut self.ebpf, &mut seen);
                    let sockets = matches!(self.http_hooks, Some(http::Hooks::Sockets(_)));
                    uprobe::attach(&mut self.ebpf, &libs, uprobe::Which::All)
                        .map(|mut a| {
                            a.seen = seen;
                            // Only the socket tracepoints see the sends the record layer is
                            // read at.
                            if sockets {
                                tls_record::start(&mut self.ebpf, &mut self.tls_record);
                            }
                            a
                        })
                        .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)))
                }
                Err(e) => Err(format!(
                    "the hook on the socket I/O that TLS needs is not attached: {e}"
                )),
            };
            match &mut t {
                Ok(a) => self.attach_thread_exit(a),
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP over TLS (OpenSSL uprobes) is unavailable")
                }
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

impl Probes {
    /// Attaches the program that forgets the TLS calls of exited threads; a refusal is logged
    /// and kept in `a` (TLS still works, at the cost the program saves).
    fn attach_thread_exit(&mut self, a: &mut uprobe::Attachment) {
        let (prog, category, name) = uprobe::THREAD_EXIT;
        match tracepoint::attach(&mut self.ebpf, prog, category, name) {
            Ok(link) => self.tracepoints.push((prog, link)),
            Err(e) => {
                let e = crate::errors::sentence(&anyhow::Error::from(e));
                tracing::warn!(error = %e, "threads that exit inside a TLS call keep their entries");
                a.exit_error = Some(e);
            }
        }
    }

    /// Attaches the OpenSSL uprobes to libssl copies that processes started since the last
    /// call map (new (device, inode) pairs); returns them. Nothing without `--http`.
    pub fn rescan_tls(&mut self) -> Vec<std::path::PathBuf> {
        let Some(Ok(a)) = &mut self.tls else {
            return Vec::new();
        };
        let libs = uprobe::rescan(&mut a.seen);
        uprobe::mark_found(&mut self.ebpf, &mut a.seen);
        if tls_record::tick(&mut self.ebpf, &a.libs, &mut self.tls_record) {
            let n = a.detach_program(&mut self.ebpf, uprobe::WRITE);
            tracing::debug!(links = n, "SSL_write's uprobes detached");
        }
        if libs.is_empty() {
            return libs;
        }
        let which = match tls_record::new_libs(&self.tls_record, &libs) {
            Ok(false) => uprobe::Which::All,
            Ok(true) => uprobe::Which::NoWrites,
            Err(why) => {
                // Back on the libraries attached before first (their hits do nothing while
                // the layer is read), then the programs stop reading it.
                match uprobe::attach(&mut self.ebpf, &a.libs.clone(), uprobe::Which::Writes) {
                    Ok(back) => a.add_links(back),
                    Err(e) => tracing::warn!(error = %e, "cannot attach SSL_write's uprobes again"),
                }
                tls_record::keep(&mut self.ebpf, &mut self.tls_record, why);
                uprobe::Which::All
            }
        };
        match uprobe::attach(&mut self.ebpf, &libs, which) {
            Ok(new) => {
                a.merge(new);
                libs
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot attach the OpenSSL uprobes to new libraries");
                Vec::new()
            }
        }
    }
}

/// Whether TLS is tried on the socket tracepoints: they stand in for the syscall hook only
/// where it would be attached for TLS alone (the packet programs read plaintext).
fn sockets_wanted(tls: bool, plain_at_syscalls: bool) -> bool {
    tls && !plain_at_syscalls
}

/// Whether the syscall hook is attached (where the socket tracepoints are not): for TLS, or
/// for plaintext where the packet programs were refused.
fn syscall_hook_needed(tls: bool, plain_at_syscalls: bool) -> bool {
    tls || plain_at_syscalls
}

/// What a failure to set the syscall hook's plaintext switch means: plaintext is lost on the
/// fallback (the hook would leave it to packet programs that are not there); with the packet
/// programs attached the switch's initial 0 is what they want, so nothing is lost.
fn switched(plain_at_syscalls: bool, e: String) -> Result<(), String> {
    if plain_at_syscalls {
        Err(e)
    } else {
        Ok(())
    }
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
    fn the_socket_tracepoints_only_for_tls_with_the_packet_programs() {
        assert!(sockets_wanted(true, false));
        assert!(!sockets_wanted(false, false), "--http-no-tls");
        // The fallback reads plaintext on the syscall hook, which then does TLS too.
        assert!(!sockets_wanted(true, true));
    }

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
    fn an_unset_switch_loses_plaintext_only_on_the_fallback() {
        let e = "map HTTP_PLAIN_AT_SYSCALLS is missing".to_string();
        assert_eq!(switched(false, e.clone()), Ok(()), "packets read it");
        assert_eq!(switched(true, e.clone()), Err(e.clone()));
        // On the fallback that makes plaintext unavailable, with both reasons.
        let refused = "no cgroup v2".to_string();
        let hook = Ok(()).and(switched(true, e.clone()));
        let got = plaintext(Err(&refused), hook.as_ref().map(|_| ())).unwrap_err();
        assert!(
            got.contains("no cgroup v2") && got.contains("missing"),
            "{got}"
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
