//! guardian's XDP programs outside the daemon: loaded from the eBPF object the release build
//! left in guardian's OUT_DIR (the same bytes the daemon embeds), for two helpers that
//! `cargo xtask bench xdp` starts:
//!
//! - `test-run`: times `xdp_noop` and `guardian_xdp` with BPF_PROG_TEST_RUN on fixed frames
//!   (a TCP SYN, a TCP ACK, a UDP datagram), and `tc_noop` and the tcx DNS programs on a UDP
//!   datagram that is not DNS, a DNS query and a DNS answer;
//! - `attach`: attaches one of the no-ops (or `guardian_xdp`) to an interface of the
//!   namespace it runs in and holds it until its stdin closes (or a time limit), like the
//!   daemon would (tc programs through tcx, at ingress).
//!
//! aya puts a program into the kernel only when `load()` is called on it by name, so loading
//! the object here loads nothing else, and the daemon never loads `xdp_noop`.
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::programs::{tc::TcAttachOptions, LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Btf, Ebpf, EbpfLoader};
use serde::{Deserialize, Serialize};

use super::frames;
use crate::cmd;

pub const NOOP: &str = "xdp_noop";
pub const GUARDIAN: &str = "guardian_xdp";
pub const TC_NOOP: &str = "tc_noop";
pub const DNS_INGRESS: &str = "guardian_dns_ingress";
pub const DNS_EGRESS: &str = "guardian_dns_egress";

/// The newest non-empty `guardian-ebpf` object under `target/release/build/guardian-*/out/`
/// (an empty one is the placeholder of an `AYA_BUILD_SKIP` build).
pub fn object_path() -> Result<PathBuf> {
    let build = cmd::target_dir()?.join("release/build");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in
        std::fs::read_dir(&build).with_context(|| format!("reading {}", build.display()))?
    {
        let dir = entry?.path();
        let is_guardian = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("guardian-"));
        let obj = dir.join("out/guardian-ebpf");
        let Ok(meta) = std::fs::metadata(&obj) else {
            continue;
        };
        if is_guardian && meta.len() > 0 {
            let mtime = meta.modified()?;
            if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
                best = Some((mtime, obj));
            }
        }
    }
    best.map(|(_, p)| p).with_context(|| {
        format!(
            "no eBPF object under {}/guardian-*/out/: run `cargo build --release -p guardian`",
            build.display()
        )
    })
}

pub fn load_object(path: &Path) -> Result<Ebpf> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let btf = Btf::from_sys_fs().ok();
    EbpfLoader::new()
        .btf(btf.as_ref())
        .load(&bytes)
        .with_context(|| format!("loading {}", path.display()))
}

fn load_xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} is not in the object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog)
}

fn load_tc<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} is not in the object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog)
}

/// One BPF_PROG_TEST_RUN measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestRun {
    pub program: String,
    pub packet: String,
    pub round: u32,
    pub repeat: u32,
    /// Average nanoseconds per run, as the kernel reports (`duration`).
    pub ns_per_run: u32,
    pub retval: u32,
}

/// `union bpf_attr`'s `test` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs `fd` `repeat` times on `frame` in the kernel; returns (ns per run, XDP action).
/// Hand-written: aya 0.14 has no wrapper for BPF_PROG_TEST_RUN.
fn test_run(fd: i32, frame: &[u8], repeat: u32) -> Result<(u32, u32)> {
    let mut attr = TestAttr {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix of the size passed; data_in points to
    // frame.len() readable bytes that outlive the call; no output buffers are given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc != 0 {
        bail!("BPF_PROG_TEST_RUN: {}", std::io::Error::last_os_error());
    }
    Ok((attr.duration, attr.retval))
}

/// `bench-helper xdp-test-run`: every (program, frame) pair, `rounds` times interleaved,
/// printed as one JSON array on stdout.
pub fn test_run_all(object: &Path, repeat: u32, rounds: u32) -> Result<()> {
    let mut ebpf = load_object(object)?;
    let mut fds = Vec::new();
    for name in [NOOP, GUARDIAN] {
        let fd = load_xdp(&mut ebpf, name)?.fd()?.as_fd().as_raw_fd();
        fds.push((name, fd));
    }
    // As the daemon does on an `--xdp` interface whose DNS answers it counts (the default):
    // BPF_PROG_TEST_RUN gives an XDP program the loopback's ifindex, 1.
    aya::maps::Array::<_, u32>::try_from(
        ebpf.map_mut("DNS_AT_XDP")
            .context("map DNS_AT_XDP is not in the object")?,
    )?
    .set(1, 1, 0)?;
    let mut tc_fds = Vec::new();
    for name in [TC_NOOP, DNS_INGRESS, DNS_EGRESS] {
        let fd = load_tc(&mut ebpf, name)?.fd()?.as_fd().as_raw_fd();
        tc_fds.push((name, fd));
    }
    let a = std::net::Ipv4Addr::new(10, 77, 200, 1);
    let b = std::net::Ipv4Addr::new(10, 77, 200, 2);
    let udp = frames::udp(frames::OTHER_HOST_MAC, a, b, 9);
    let query = frames::dns(a, b, 40000, 53, false);
    let answer = frames::dns(b, a, 53, 40000, true);
    let tc_packets = [
        ("udp_60B".to_string(), udp.clone()),
        (format!("dns_query_{}B", query.len()), query),
        (format!("dns_answer_{}B", answer.len()), answer),
    ];
    let packets = [
        (
            "tcp_syn_74B",
            frames::syn(frames::OTHER_HOST_MAC, a, b, 8080),
        ),
        (
            "tcp_ack_66B",
            frames::ack(frames::OTHER_HOST_MAC, a, b, 8080),
        ),
        ("udp_60B", udp),
        ("dns_answer_71B", frames::dns(b, a, 53, 40000, true)),
    ];
    let mut out = Vec::new();
    for round in 0..rounds {
        let xdp = packets.iter().map(|(p, f)| (p.to_string(), f, &fds));
        let tc = tc_packets.iter().map(|(p, f)| (p.clone(), f, &tc_fds));
        for (packet, frame, fds) in xdp.chain(tc) {
            for (program, fd) in fds {
                let (ns, retval) = test_run(*fd, frame, repeat)?;
                out.push(TestRun {
                    program: program.to_string(),
                    packet: packet.clone(),
                    round,
                    repeat,
                    ns_per_run: ns,
                    retval,
                });
            }
        }
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// `bench-helper xdp-attach`: attaches `program` to `iface` (this process's namespace),
/// prints `attached`, and holds it until stdin closes or `max` passes.
pub fn attach_and_hold(object: &Path, program: &str, iface: &str, max: Duration) -> Result<()> {
    let mut ebpf = load_object(object)?;
    if program == TC_NOOP {
        let prog = load_tc(&mut ebpf, program)?;
        prog.attach_with_options(
            iface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .with_context(|| format!("attaching {program} to {iface} (tcx ingress)"))?;
    } else {
        let prog = load_xdp(&mut ebpf, program)?;
        prog.attach(iface, XdpMode::default())
            .with_context(|| format!("attaching {program} to {iface}"))?;
    }
    println!("attached");
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(max.saturating_sub(start.elapsed()));
    Ok(())
}
