//! Loading and attaching guardian's kernel programs, and detaching exactly those at the end.
mod addr;
pub mod batch;
pub mod binds;
pub mod clock;
mod error;
pub mod features;
mod globals;
pub mod http;
mod http_attach;
pub mod http_skb;
pub mod limits;
pub mod offsets;
pub mod prove;
pub mod shadows;
mod sizing;
pub mod sockops;
mod switch;
pub mod tcx;
mod tls_record;
mod tracepoint;
pub mod uprobe;
pub mod uprobe_site;
pub mod xdp;

use std::path::{Path, PathBuf};

use aya::{
    maps::{Map, MapData, RingBuf},
    programs::{trace_point::TracePointLinkId, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use guardian_common::Offsets;

pub use addr::family_addr;
pub use error::ProbeError;

/// The eBPF object built by `build.rs` (aya-build) from guardian-ebpf.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guardian-ebpf"));

/// (program, tracepoint category, tracepoint name). None is a `syscalls:` tracepoint: see
/// [`binds`] for why, and for the bind tracepoints it falls back to.
pub const TRACEPOINTS: [(&str, &str, &str); 3] = [
    ("tcp_retransmit", "tcp", "tcp_retransmit_skb"),
    ("tcp_synack", "tcp", "tcp_retransmit_synack"),
    ("sock_state", "sock", "inet_sock_set_state"),
];

/// Handles to the maps of guardian's own programs that remedies write (XDP limits, sock_ops
/// policies). Empty when the programs are not loaded (`guardian rollback` with the daemon
/// stopped, unit tests).
#[derive(Default)]
pub struct Maps {
    /// `sockopt_failfast` policies (sock_ops); None when that program is not attached.
    pub failfast: Option<sockops::FailfastMap>,
    /// The XDP program's SYN limits (`xdp_source_limit`, `xdp_port_limit`).
    pub limits: Option<limits::Limits>,
}

pub struct LoadOptions {
    pub tracefs: PathBuf,
    pub btf: PathBuf,
    pub xdp_ifaces: Vec<String>,
    /// Where the tcx DNS programs go (`[interfaces] dns`, by default the XDP interfaces).
    pub dns_ifaces: Vec<String>,
    /// cgroup v2 directory for the sock_ops program (None: the cgroup v2 mount).
    pub cgroup: Option<PathBuf>,
    /// Attach the HTTP status programs (`guardian run --http`).
    pub http: bool,
    /// With `http`, the OpenSSL uprobes too (and the hook on the socket I/O they need).
    pub http_tls: bool,
}

/// The loaded object, its attachments, and the maps userspace reads.
pub struct Probes {
    ebpf: Ebpf,
    tracepoints: Vec<(&'static str, TracePointLinkId)>,
    xdp: Vec<xdp::Attachment>,
    tcx: Vec<tcx::Attachment>,
    /// Why the DNS programs are not attached (tcx and clsact both refused); the daemon runs
    /// without them.
    dns_error: Option<String>,
    /// How many interfaces the DNS programs were asked for.
    dns_ifaces: usize,
    /// How failed binds are seen (None only before `load` gets to them).
    binds: Option<binds::Binds>,
    /// The sock_ops program, or why it is not attached (the daemon runs without it).
    sockops: Result<sockops::Attachment, String>,
    /// The HTTP status programs: attached, not asked for (None), or why not.
    http: Option<Result<(), String>>,
    /// The HTTP programs' hook on the socket I/O: the socket tracepoints (TLS), or the
    /// syscall hook (TLS; plaintext too without the packet programs).
    http_hooks: Option<http::Hooks>,
    /// Whether HTTP/2 over TLS is followed (the hook sees a write's result), or why not.
    http2: Option<Result<bool, String>>,
    /// The packet programs (plaintext), or why they are not attached.
    http_packets: Option<Result<http_skb::Attachment, String>>,
    /// The OpenSSL uprobes (with `http`), or why they are not attached.
    tls: Option<Result<uprobe::Attachment, String>>,
    /// Where reading OpenSSL's record layer stands (tls_record.rs).
    tls_record: tls_record::Record,
    /// The reset programs (`reset_storm`), or why they are not attached.
    shadows: Result<(), String>,
    pub offsets: Offsets,
}

impl Probes {
    /// Derives offsets, loads the object and attaches every program.
    pub fn load(opts: &LoadOptions) -> Result<Self, ProbeError> {
        if EBPF_OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        let kbtf = offsets::KernelBtf::open(&opts.btf)?;
        let globals = derive_globals(&opts.tracefs, &kbtf)?;
        let btf = Btf::parse_file(&opts.btf, aya::Endianness::default()).ok();
        let mut loader = EbpfLoader::new();
        for name in sizing::unused(sizing::Asked {
            http: opts.http,
            xdp: !opts.xdp_ifaces.is_empty(),
            dns: !opts.dns_ifaces.is_empty(),
        }) {
            loader.map_max_entries(name, 1);
        }
        globals.set(&mut loader);
        let ebpf = loader
            .btf(btf.as_ref())
            .load(EBPF_OBJECT)
            .map_err(ProbeError::Load)?;
        let globals::Globals {
            offsets,
            http: http_offsets,
            shadows: shadow_offsets,
        } = globals;
        let mut probes = Probes {
            ebpf,
            tracepoints: Vec::new(),
            xdp: Vec::new(),
            tcx: Vec::new(),
            dns_error: None,
            dns_ifaces: opts.dns_ifaces.len(),
            binds: None,
            sockops: Err("not attached yet".into()),
            http: None,
            http_hooks: None,
            http2: None,
            http_packets: None,
            tls: None,
            tls_record: tls_record::Record::Off,
            shadows: Err("not attached yet".into()),
            offsets,
        };
        for (prog, category, name) in TRACEPOINTS {
            let link = tracepoint::attach(&mut probes.ebpf, prog, category, name)?;
            probes.tracepoints.push((prog, link));
        }
        probes.binds = Some(binds::attach(
            &mut probes.ebpf,
            tracepoint::attach,
            &mut probes.tracepoints,
        )?);
        // Optional: without the reset tracepoints only reset_storm goes undetected.
        probes.shadows = match shadow_offsets {
            Ok(_) => shadows::attach(&mut probes.ebpf, &mut probes.tracepoints),
            Err(e) => Err(e.into()),
        }
        .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)));
        if let Err(e) = &probes.shadows {
            tracing::warn!(error = %e, "resets per port (reset_storm) are unavailable");
        }
        probes.sockops = sockops::attach(&mut probes.ebpf, opts.cgroup.as_deref())
            .map_err(|e| crate::errors::sentence(&anyhow::Error::from(e)));
        if let Err(e) = &probes.sockops {
            tracing::warn!(error = %e, "sockopt_failfast is unavailable");
        }
        sockops::set_status(probes.sockops.as_ref().map(|_| ()).map_err(Clone::clone));
        if opts.http {
            probes.attach_http(opts.http_tls, http_offsets, btf.as_ref());
        }
        for iface in &opts.xdp_ifaces {
            let a = xdp::attach(&mut probes.ebpf, iface)?;
            probes.xdp.push(a);
        }
        // DNS per resolver (tcx, or clsact before 6.6), only where asked for: a tcx program
        // costs every packet of its interface the hook's entry even when it returns at once.
        // Optional: without it only the DNS faults go undetected (the `attached` event says
        // why).
        for iface in &opts.dns_ifaces {
            let at_xdp = match probes.xdp.iter_mut().find(|a| a.iface == *iface) {
                Some(a) => xdp::count_dns(&mut probes.ebpf, a),
                None => false,
            };
            match tcx::attach(&mut probes.ebpf, iface, !at_xdp) {
                Ok(t) => probes.tcx.extend(t),
                Err(e) => {
                    tracing::warn!(error = %e, "the DNS programs are unavailable");
                    probes.dns_error = Some(e.to_string());
                }
            }
        }
        Ok(probes)
    }

    /// Names of what is attached, for the `attached` lifecycle event.
    pub fn attached(&self) -> serde_json::Value {
        serde_json::json!({
            "tracepoints": TRACEPOINTS.iter().map(|(p, c, n)| serde_json::json!({"program": p, "tracepoint": format!("{c}:{n}")})).collect::<Vec<_>>(),
            "xdp": self.xdp.iter().map(|a| serde_json::json!({"iface": a.iface, "ifindex": a.ifindex, "mode": a.mode, "replaced_stale": a.replaced_stale, "dns_answers": a.dns})).collect::<Vec<_>>(),
            "binds": self.binds.as_ref().map(binds::Binds::describe),
            "tcx": self.tcx.iter().map(|a| serde_json::json!({"iface": a.iface, "program": a.program, "direction": a.direction, "mode": a.mode})).collect::<Vec<_>>(),
            "sockops": match &self.sockops {
                Ok(a) => serde_json::json!({"program": sockops::PROGRAM, "cgroup": a.cgroup}),
                Err(e) => serde_json::json!({"program": sockops::PROGRAM, "error": e}),
            },
            "http": match &self.http {
                None => serde_json::json!(null),
                Some(Ok(())) => serde_json::json!({"packets": self.http_packets.as_ref().map(|r| match r { Ok(a) => a.describe(), Err(e) => serde_json::json!({"error": e}) }), "tracepoints": self.http_hooks.iter().flat_map(http::Hooks::names).map(|(p, n)| serde_json::json!({"program": p, "tracepoint": n})).collect::<Vec<_>>(), "sys_exit_error": self.http_hooks.as_ref().and_then(http::Hooks::fallback), "http2": match &self.http2 { Some(Ok(on)) => serde_json::json!(on), Some(Err(e)) => serde_json::json!({"error": e}), None => serde_json::Value::Null }}),
                Some(Err(e)) => serde_json::json!({"error": e}),
            },
            "tls": match &self.tls {
                None => serde_json::json!(null),
                Some(Ok(a)) => serde_json::json!({"libs": a.libs, "failed": a.failed.iter().map(|(l, e)| serde_json::json!({"lib": l, "error": e})).collect::<Vec<_>>(), "record_layer": self.tls_record.describe(), "thread_exit": match &a.exit_error { None => serde_json::json!(format!("{}:{}", uprobe::THREAD_EXIT.1, uprobe::THREAD_EXIT.2)), Some(e) => serde_json::json!({"error": e}) }}),
                Some(Err(e)) => serde_json::json!({"error": e}),
            },
            "resets": match &self.shadows {
                Ok(()) => serde_json::json!({"tracepoints": shadows::TRACEPOINTS.iter().map(|(p, c, n)| serde_json::json!({"program": p, "tracepoint": format!("{c}:{n}")})).collect::<Vec<_>>()}),
                Err(e) => serde_json::json!({"error": e}),
            },
            "offsets": {
                "tcp_retransmit_skb.err": (self.offsets.rtx_err != Offsets::ABSENT),
                "sock_net": self.offsets.sock_net,
                "net_inum": self.offsets.net_inum,
                "skb_gso_segs": self.offsets.skb_gso_segs,
            },
        })
    }

    /// What this kernel and these attachments offer, per feature (see [`features`]).
    pub fn features(&self) -> Vec<features::Feature> {
        let mut out = features::from_offsets(&self.offsets, features::running_kernel());
        out.push(features::xdp(self.xdp.len()));
        let modes: Vec<&'static str> = self.tcx.iter().map(|a| a.mode).collect();
        out.push(features::dns(
            &modes,
            self.dns_ifaces,
            self.dns_error.as_deref(),
        ));
        out.push(features::binds(match &self.binds {
            Some(binds::Binds::Tracepoints { why }) => Err(why.as_str()),
            _ => Ok(()),
        }));
        out.push(features::sock_ops(
            self.sockops.as_ref().map(|_| ()).map_err(|e| e.as_str()),
        ));
        let packets_refused = match &self.http_packets {
            Some(Err(e)) => Some(e.as_str()),
            _ => None,
        };
        out.push(features::http(self.http.as_ref().map(|r| {
            r.as_ref().map(|_| packets_refused).map_err(|e| e.as_str())
        })));
        let failed: Vec<String> = match &self.tls {
            Some(Ok(a)) => a
                .failed
                .iter()
                .map(|(l, e)| format!("{}: {e}", l.display()))
                .collect(),
            _ => Vec::new(),
        };
        out.push(features::tls(match (&self.http, &self.tls) {
            (_, Some(Ok(a))) => Some(Ok((a.libs.len(), failed.as_slice()))),
            (_, Some(Err(e))) => Some(Err(features::TlsDown::Refused(e.as_str()))),
            (Some(Err(e)), None) => Some(Err(features::TlsDown::NoHttp(e.as_str()))),
            (_, None) => None,
        }));
        out
    }

    /// [`Probes::attached`] with `coverage`: the features, and which of `faults` are covered.
    pub fn attached_with_coverage(&self, faults: &[&str]) -> serde_json::Value {
        let mut v = self.attached();
        v["coverage"] = features::coverage(&self.features(), faults);
        v
    }

    /// XDP interfaces as (name, ifindex).
    pub fn xdp_ifaces(&self) -> Vec<(String, u32)> {
        self.xdp
            .iter()
            .map(|a| (a.iface.clone(), a.ifindex))
            .collect()
    }

    /// A descriptor of every loaded program, by name (for the kernel's per-program counters).
    pub fn program_fds(&self) -> Vec<(String, aya::programs::ProgramFd)> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| Some((name.to_string(), p.fd().ok()?.try_clone().ok()?)))
            .collect()
    }

    /// Whether the OpenSSL uprobes are attached (to at least one library).
    pub fn tls_attached(&self) -> bool {
        matches!(&self.tls, Some(Ok(_)))
    }

    /// Whether the HTTP status programs are attached.
    pub fn http_attached(&self) -> bool {
        matches!(self.http, Some(Ok(())))
    }

    /// Whether the reset programs (`reset_storm`) are attached.
    pub fn shadows_attached(&self) -> bool {
        self.shadows.is_ok()
    }

    pub fn take_map(&mut self, name: &'static str) -> Result<Map, ProbeError> {
        self.ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
    }

    pub fn take_ringbuf(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        RingBuf::try_from(self.take_map("EVENTS")?).map_err(|_| ProbeError::MissingMap("EVENTS"))
    }

    /// The maps remedies write (XDP limits, sock_ops policies), taken out of the object.
    pub fn remedy_maps(&mut self) -> Result<Maps, ProbeError> {
        let failfast = match &self.sockops {
            Ok(_) => Some(
                sockops::FailfastMap::new(self.take_map(sockops::MAP)?)
                    .map_err(|_| ProbeError::MissingMap(sockops::MAP))?,
            ),
            Err(_) => None,
        };
        // Without an XDP attachment a limit would be written and never enforced.
        let limits = match self.xdp.is_empty() {
            true => None,
            false => Some(limits::Limits::take(|name| self.take_map(name))?),
        };
        Ok(Maps { failfast, limits })
    }

    /// Detaches everything guardian attached, and only that. Returns what was detached.
    pub fn detach(mut self) -> Vec<String> {
        let mut done = Vec::new();
        for (prog, link) in std::mem::take(&mut self.tracepoints) {
            if let Some(Ok(p)) = self.ebpf.program_mut(prog).map(<&mut TracePoint>::try_from) {
                match p.detach(link) {
                    Ok(()) => done.push(format!("tracepoint:{prog}")),
                    Err(e) => tracing::warn!(program = prog, error = %e, "detach failed"),
                }
            }
        }
        if let Some(b) = self.binds.take() {
            done.extend(binds::detach(&mut self.ebpf, b));
        }
        if let Some(Ok(a)) = self.http_packets.take() {
            done.extend(http_skb::detach(&mut self.ebpf, a));
        }
        if let Some(h) = self.http_hooks.take() {
            done.extend(h.detach(&mut self.ebpf));
        }
        if let Some(Ok(a)) = self.tls.take() {
            done.extend(uprobe::detach(&mut self.ebpf, a));
        }
        for a in std::mem::take(&mut self.tcx) {
            let name = format!("tcx:{}:{}", a.direction, a.iface);
            match tcx::detach(&mut self.ebpf, a) {
                Ok(()) => done.push(name),
                Err(e) => tracing::warn!(%name, error = %e, "detach failed"),
            }
        }
        if let Ok(a) = std::mem::replace(&mut self.sockops, Err("detached".into())) {
            let name = format!("sockops:{}", a.cgroup.display());
            match sockops::detach(&mut self.ebpf, a) {
                Ok(()) => done.push(name),
                Err(e) => tracing::warn!(%name, error = %e, "detach failed"),
            }
        }
        for a in std::mem::take(&mut self.xdp) {
            let name = format!("xdp:{}", a.iface);
            match xdp::detach(&mut self.ebpf, a) {
                Ok(()) => done.push(name),
                Err(e) => tracing::warn!(%name, error = %e, "detach failed"),
            }
        }
        done
    }
}

/// Every offset of this kernel, as the object's globals (globals.rs); an error only for the
/// core ones, without which nothing loads.
fn derive_globals(
    tracefs: &Path,
    kbtf: &offsets::KernelBtf,
) -> Result<globals::Globals, offsets::OffsetError> {
    Ok(globals::Globals {
        offsets: offsets::derive(tracefs, kbtf)?,
        http: http::derive(tracefs, kbtf),
        shadows: shadows::derive(tracefs, kbtf),
    })
}

/// Whether this binary carries its eBPF programs (it does not when built with AYA_BUILD_SKIP).
pub fn has_object() -> bool {
    !EBPF_OBJECT.is_empty()
}

/// Where tracefs is mounted.
pub fn tracefs_path() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

pub fn btf_path() -> &'static Path {
    Path::new(BTF_PATH)
}
