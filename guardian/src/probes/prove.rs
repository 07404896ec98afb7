//! `doctor`'s proof of each kernel feature: load guardian's object and attach every program —
//! the tracepoints, the cgroup bind and HTTP packet programs, XDP and the DNS programs (tcx, else clsact) — to a veth pair in a
//! throwaway network namespace of its own (a thread that unshared its namespace: the veths
//! and everything attached to them go away with the thread), then detach.
//!
//! Loading alone is not enough: on 6.1 the tc program loads but its tcx attach is refused.
use aya::{programs::TracePoint, Btf, EbpfLoader};

use super::features::{self, Feature, State};
use super::{offsets, tcx, xdp, TRACEPOINTS};

const VETH: (&str, &str) = ("gdoctor0", "gdoctor1");

/// Every feature, proved; `Err` with one sentence when the proof could not even start (no
/// object, no BTF, no namespace).
pub fn prove() -> Result<Vec<Feature>, String> {
    std::thread::spawn(in_own_netns)
        .join()
        .unwrap_or_else(|_| Err("the feature probe thread panicked".into()))
}

fn in_own_netns() -> Result<Vec<Feature>, String> {
    if !super::has_object() {
        return Err("this binary has no eBPF object (built with AYA_BUILD_SKIP)".into());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot make a throwaway network namespace: {e}"))?;
    make_veth()
        .map_err(|e| format!("cannot create a veth pair in the throwaway namespace: {e}"))?;
    let tracefs = super::tracefs_path().ok_or("tracefs is not mounted")?;
    let kbtf = offsets::KernelBtf::open(super::btf_path()).map_err(|e| e.to_string())?;
    // The run's globals, all of them: the verifier prunes on their values (globals.rs).
    let globals = super::derive_globals(&tracefs, &kbtf).map_err(|e| e.to_string())?;
    let offsets = globals.offsets;
    let btf = Btf::parse_file(super::btf_path(), aya::Endianness::default()).ok();
    let mut loader = EbpfLoader::new();
    globals.set(&mut loader);
    let mut ebpf = loader
        .btf(btf.as_ref())
        .load(super::EBPF_OBJECT)
        .map_err(|e| format!("the kernel refused guardian's object: {e}"))?;
    let kernel = features::running_kernel();
    let mut out = features::from_offsets(&offsets, kernel);

    let mut failed = Vec::new();
    let mut fdinfo_misses = None;
    for (prog, category, name) in TRACEPOINTS.into_iter().chain(super::binds::TRACEPOINTS) {
        let r = (|| -> Result<(), String> {
            let p: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or("missing from the object")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            p.load().map_err(|e| e.to_string())?;
            let link = p.attach(category, name).map_err(|e| e.to_string())?;
            if fdinfo_misses.is_none() {
                fdinfo_misses = Some(has_recursion_misses(p));
            }
            p.detach(link).map_err(|e| e.to_string())
        })();
        if let Err(e) = r {
            failed.push(format!("{category}:{name}: {e}"));
        }
    }
    out.push(if failed.is_empty() {
        Feature::new("tracepoints", State::Available, "all 5 attach")
    } else {
        Feature::new("tracepoints", State::Unavailable, failed.join("; "))
    });
    if fdinfo_misses == Some(false) {
        // The kernel has no recursion_misses line at all (before 5.12).
        if let Some(f) = out.iter_mut().find(|f| f.feature == "recursion_misses") {
            *f = features::recursion_misses(Some((5, 11)));
        }
    }

    let binds = super::binds::prove(&mut ebpf);
    out.push(features::binds(
        binds.as_ref().map(|_| ()).map_err(|e| e.as_str()),
    ));

    // The packet programs of --http (plaintext), on the cgroup v2 root for these
    // milliseconds too; refused, a run with --http reads plaintext at the syscalls instead.
    out.push(match super::http_skb::attach(&mut ebpf) {
        Ok(a) => {
            super::http_skb::detach(&mut ebpf, a);
            features::http(Some(Ok(None)))
        }
        Err(e) => features::http(Some(Ok(Some(e.as_str())))),
    });

    let (a, b) = VETH;
    out.push(match xdp::attach(&mut ebpf, a) {
        Ok(att) => {
            let _ = xdp::detach(&mut ebpf, att);
            Feature::new("xdp", State::Available, format!("attached to a veth ({a})"))
        }
        Err(e) => Feature::new("xdp", State::Unavailable, e.to_string()),
    });
    out.push(match tcx::attach(&mut ebpf, b, true) {
        Ok(atts) => {
            let modes: Vec<&'static str> = atts.iter().map(|t| t.mode).collect();
            for t in atts {
                let _ = tcx::detach(&mut ebpf, t);
            }
            features::dns(&modes, 1, None)
        }
        Err(e) => features::dns(&[], 1, Some(e.to_string().as_str())),
    });
    // The OpenSSL uprobes on the libraries a run with --http would find, detached at once.
    // Uprobes are global: for these few milliseconds they also fire in the host's processes,
    // into this throwaway object's maps.
    let (libs, _) = super::uprobe::discover();
    out.push(
        match super::uprobe::attach(&mut ebpf, &libs, super::uprobe::Which::All) {
            Ok(a) => {
                let n = a.libs.len();
                let failed: Vec<String> = a
                    .failed
                    .iter()
                    .map(|(l, e)| format!("{}: {e}", l.display()))
                    .collect();
                let _ = super::uprobe::detach(&mut ebpf, a);
                features::tls(Some(Ok((n, failed.as_slice()))))
            }
            Err(e) => features::tls(Some(Err(features::TlsDown::Refused(&e.to_string())))),
        },
    );
    Ok(out)
}

/// Whether the kernel reports `recursion_misses` in a program's fdinfo.
fn has_recursion_misses(p: &TracePoint) -> bool {
    use std::os::fd::{AsFd, AsRawFd};
    let Ok(fd) = p.fd() else { return false };
    let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("recursion_misses:"))
}

/// A veth pair, both ends up, in the calling thread's (fresh) namespace.
fn make_veth() -> Result<(), String> {
    use rtnetlink::{LinkUnspec, LinkVeth};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let (a, b) = VETH;
        handle
            .link()
            .add(LinkVeth::new(a, b).build())
            .execute()
            .await
            .map_err(|e| e.to_string())?;
        for name in [a, b] {
            handle
                .link()
                .set(LinkUnspec::new_with_name(name).up().build())
                .execute()
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}
