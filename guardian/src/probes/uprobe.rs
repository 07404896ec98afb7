//! OpenSSL uprobes (guardian-ebpf/src/tls.rs): every `libssl.so.3` that a process maps, found
//! in `/proc/*/maps` (through `/proc/PID/root`, so containers' copies count), plus the
//! system's own, attached for all processes. One attachment per library file (deduplicated by
//! device and inode): processes started later from those files are covered too. A libssl
//! deleted while mapped (upgraded under a running server) is attached through the process's
//! `map_files` link; its uprobes keep that file's inode until the daemon exits.
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::{
    maps::Array,
    programs::{
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
        UProbe,
    },
    Ebpf,
};

use guardian_common::http::tls_tgid_slot;

use super::{uprobe_site, ProbeError};

/// (program, symbol, site) per library; `tls_hs_exit` is the uretprobe of the three handshake
/// functions (guardian-ebpf/src/tls_hs.rs). Only `SSL_write` is on a keep-alive request's
/// path (one hit per response): every hit is a trap, so what the syscall tracepoints can tell
/// (request starts, sockets, how a handshake's reads ended) is taken from them instead.
/// `Some(n)`: an entry-only probe that reads the first `n` arguments, placed where the kernel
/// need not single-step (uprobe_site.rs); `None`: on the entry (return probes, and the entry
/// probes that share their breakpoint).
pub const PROBES: [(&str, &str, Option<usize>); 10] = [
    ("tls_write", "SSL_write", Some(3)),
    ("tls_write", "SSL_write_ex", Some(3)),
    ("tls_hs_enter", "SSL_do_handshake", None),
    ("tls_hs_exit", "SSL_do_handshake", None),
    ("tls_accept_enter", "SSL_accept", None),
    ("tls_hs_exit", "SSL_accept", None),
    ("tls_connect_enter", "SSL_connect", None),
    ("tls_hs_exit", "SSL_connect", None),
    ("tls_set_accept", "SSL_set_accept_state", Some(1)),
    ("tls_set_connect", "SSL_set_connect_state", Some(1)),
];

/// The program that removes the per-thread entries of threads that exit inside a call (no
/// return probe fires for them: guardian-ebpf/src/tls_exit.rs), and its tracepoint.
pub const THREAD_EXIT: (&str, &str, &str) = ("tls_thread_exit", "sched", "sched_process_exit");

/// Where Debian and others keep the system's libssl (attached even before a process maps it).
const SYSTEM: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
];

/// The uprobes attached, per library.
#[derive(Debug, Default)]
pub struct Attachment {
    pub libs: Vec<PathBuf>,
    /// What discovery saw, for the rescans.
    pub seen: Seen,
    links: Vec<(&'static str, UProbeLinkId)>,
    /// Libraries that could not be attached, with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Why [`THREAD_EXIT`] is not attached (None: it is): then a thread that dies inside a
    /// handshake keeps its entry, and the TLS hooks their slow path, until the daemon exits.
    pub exit_error: Option<String>,
}

/// Whether a mapped file is an OpenSSL 3 libssl (`libssl.so.3`, maybe with a suffix).
pub fn is_libssl(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or("");
    base == "libssl.so.3" || base.starts_with("libssl.so.3.")
}

/// A libssl as one process maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Its path, inside the process's root.
    Path(String),
    /// Deleted since it was mapped: a package upgrade replaced the file while the process
    /// kept running (unattended upgrades do not restart nginx). Its path now names the new
    /// file or nothing; the mapped one is reached through `/proc/PID/map_files/<range>`, a
    /// link the kernel follows to the deleted file, which uprobes attach to as to any other.
    Deleted { path: String, range: String },
}

/// The libssl files in one `/proc/PID/maps` text, each once.
pub fn libs_in_maps(text: &str) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(range), Some(path)) = (f.next(), f.nth(4)) else {
            continue;
        };
        if !path.starts_with('/') || !is_libssl(path) {
            continue;
        }
        let lib = match f.next() {
            Some("(deleted)") => Mapped::Deleted {
                path: path.to_string(),
                range: range.to_string(),
            },
            _ => Mapped::Path(path.to_string()),
        };
        let same = |m: &Mapped| match (m, &lib) {
            (Mapped::Path(a), Mapped::Path(b)) => a == b,
            (Mapped::Deleted { path: a, .. }, Mapped::Deleted { path: b, .. }) => a == b,
            _ => false,
        };
        if !out.iter().any(same) {
            out.push(lib);
        }
    }
    out
}

/// What discovery has seen: library files by (device, inode), and the processes whose maps
/// were read (a process maps its libssl at start, so each one is read once).
#[derive(Debug, Default)]
pub struct Seen {
    libs: HashSet<(u64, u64)>,
    /// When each process was first listed.
    pids: HashMap<u32, Instant>,
    /// Processes whose maps listed a libssl, since [`Seen::take_tls_pids`].
    tls_pids: Vec<u32>,
}

/// A process is read again on each rescan during this long after it was first listed: it
/// may load libssl a moment after exec (Python imports `ssl` lazily, dlopen).
pub const YOUNG: Duration = Duration::from_secs(10);

/// Every distinct libssl file: the system's, then those mapped by running processes.
pub fn discover() -> (Vec<PathBuf>, Seen) {
    let mut seen = Seen::default();
    let mut out: Vec<PathBuf> = SYSTEM
        .iter()
        .map(PathBuf::from)
        .filter(|p| seen.add_lib(p))
        .collect();
    out.extend(rescan(&mut seen));
    (out, seen)
}

impl Seen {
    /// Records a library file; true when it is new.
    fn add_lib(&mut self, p: &Path) -> bool {
        std::fs::metadata(p).is_ok_and(|m| self.libs.insert((m.dev(), m.ino())))
    }

    /// The processes found mapping a libssl since the last call, for [`mark_tls_pids`].
    pub fn take_tls_pids(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.tls_pids)
    }

    /// The pids of `listed` to read: not listed before, or first listed less than `YOUNG`
    /// ago. Pids gone are forgotten (a reused pid is a new process).
    pub fn new_pids(&mut self, listed: &[u32], now: Instant) -> Vec<u32> {
        let alive: HashSet<u32> = listed.iter().copied().collect();
        self.pids.retain(|p, _| alive.contains(p));
        listed
            .iter()
            .copied()
            .filter(|p| now.saturating_duration_since(*self.pids.entry(*p).or_insert(now)) < YOUNG)
            .collect()
    }
}

/// The libssl files mapped by processes not seen before that are new (device, inode) pairs:
/// new processes and containers that map another copy. Reads only new processes' maps.
pub fn rescan(seen: &mut Seen) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut out = Vec::new();
    for pid in seen.new_pids(&pids, Instant::now()) {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let libs = libs_in_maps(&maps);
        if !libs.is_empty() {
            seen.tls_pids.push(pid);
        }
        for lib in libs {
            let p = match lib {
                Mapped::Path(l) => {
                    Path::new(&format!("/proc/{pid}/root")).join(l.trim_start_matches('/'))
                }
                Mapped::Deleted { range, .. } => {
                    PathBuf::from(format!("/proc/{pid}/map_files/{range}"))
                }
            };
            if seen.add_lib(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Marks `pids` in `TLS_TGIDS` (guardian-ebpf/src/gate.rs): processes that map a libssl, whose
/// reads the syscall hook looks at for TLS records. A process marks itself at its first
/// `SSL_write` or handshake; this covers one that, when guardian starts, already holds TLS
/// connections and reads a request on one before it writes.
pub fn mark_tls_pids(ebpf: &mut Ebpf, pids: &[u32]) -> Result<(), String> {
    let map = ebpf
        .map_mut("TLS_TGIDS")
        .ok_or("TLS_TGIDS is not in the eBPF object")?;
    let mut slots: Array<_, u8> = Array::try_from(map).map_err(|e| e.to_string())?;
    for pid in pids {
        slots
            .set(tls_tgid_slot(*pid), 1, 0)
            .map_err(|e| format!("marking process {pid}: {e}"))?;
    }
    Ok(())
}

/// [`mark_tls_pids`] for the processes `seen` found since the last call; a failure is logged
/// (what it costs: a response per such process, see above), not fatal.
pub fn mark_found(ebpf: &mut Ebpf, seen: &mut Seen) {
    let pids = seen.take_tls_pids();
    if pids.is_empty() {
        return;
    }
    if let Err(e) = mark_tls_pids(ebpf, &pids) {
        tracing::warn!(error = %e, "cannot mark the processes that map libssl");
    }
}

/// The probes of [`PROBES`] an attach takes: all, all but `SSL_write`'s (the record layer is
/// read at the sends: tls_record.rs), or only those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    All,
    NoWrites,
    Writes,
}

/// The program of `SSL_write`'s probes.
pub const WRITE: &str = "tls_write";

impl Which {
    fn takes(self, prog: &str) -> bool {
        match self {
            Which::All => true,
            Which::NoWrites => prog != WRITE,
            Which::Writes => prog == WRITE,
        }
    }
}

/// Attaches the probes `which` takes to every library; a library that fails is listed, not
/// fatal.
pub fn attach(ebpf: &mut Ebpf, libs: &[PathBuf], which: Which) -> Result<Attachment, ProbeError> {
    let mut a = Attachment::default();
    for (prog, _, _) in PROBES {
        let p: &mut UProbe = ebpf
            .program_mut(prog)
            .ok_or(ProbeError::MissingProgram(prog))?
            .try_into()
            .map_err(|source| ProbeError::Attach {
                program: prog,
                target: "uprobe".into(),
                source,
            })?;
        if p.fd().is_err() {
            p.load().map_err(|source| ProbeError::Attach {
                program: prog,
                target: "uprobe".into(),
                source,
            })?;
        }
    }
    for lib in libs {
        let mut links = Vec::new();
        let mut err = None;
        let elf = std::fs::read(lib).ok();
        let mut sites = Vec::new();
        for (prog, sym, keep) in PROBES.into_iter().filter(|(p, _, _)| which.takes(p)) {
            let p: &mut UProbe = match ebpf.program_mut(prog).map(TryInto::try_into) {
                Some(Ok(p)) => p,
                _ => return Err(ProbeError::MissingProgram(prog)),
            };
            let off = keep.map_or(0, |n| uprobe_site::site(lib, elf.as_deref(), sym, n));
            let at = match off {
                0 => UProbeAttachLocation::Symbol(sym),
                off => UProbeAttachLocation::SymbolOffset(sym, off),
            };
            if off != 0 {
                sites.push((sym, off));
            }
            match p.attach(at, lib, UProbeScope::AllProcesses) {
                Ok(l) => links.push((prog, l)),
                Err(e) => {
                    err = Some(format!("{sym}: {e}"));
                    break;
                }
            }
        }
        match err {
            None => {
                tracing::debug!(lib = %lib.display(), past_entry = ?sites, "OpenSSL uprobes attached");
                a.libs.push(lib.clone());
                a.links.extend(links);
            }
            Some(e) => {
                tracing::warn!(lib = %lib.display(), error = %e, "cannot attach the OpenSSL uprobes");
                detach_links(ebpf, links);
                a.failed.push((lib.clone(), e));
            }
        }
    }
    Ok(a)
}

impl Attachment {
    /// Adds the libraries and links of a later attachment.
    pub fn merge(&mut self, other: Attachment) {
        self.libs.extend(other.libs);
        self.links.extend(other.links);
        self.failed.extend(other.failed);
    }

    /// Detaches the probes of program `prog` from every library; returns how many.
    pub fn detach_program(&mut self, ebpf: &mut Ebpf, prog: &str) -> usize {
        let (gone, kept) = std::mem::take(&mut self.links)
            .into_iter()
            .partition(|(p, _)| *p == prog);
        self.links = kept;
        detach_links(ebpf, gone)
    }

    /// Adds links attached later to libraries already listed.
    pub fn add_links(&mut self, other: Attachment) {
        self.links.extend(other.links);
    }
}

fn detach_links(ebpf: &mut Ebpf, links: Vec<(&'static str, UProbeLinkId)>) -> usize {
    let mut n = 0;
    for (prog, link) in links {
        if let Some(Ok(p)) = ebpf.program_mut(prog).map(<&mut UProbe>::try_from) {
            match p.detach(link) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(program = prog, error = %e, "detach failed"),
            }
        }
    }
    n
}

/// Detaches every uprobe; returns what was detached, for the `detached` event.
pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Vec<String> {
    let libs = a.libs;
    detach_links(ebpf, a.links);
    libs.iter()
        .map(|l| format!("uprobe:{}", l.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescan_lists_the_processes_that_map_libssl() {
        // This test process, before and after it loads the system's libssl itself (dlopen:
        // guardian's sources start no process, tests included; security.rs).
        let me = std::process::id();
        let mut seen = Seen::default();
        rescan(&mut seen);
        assert!(!seen.take_tls_pids().contains(&me), "libssl already mapped");
        let name = std::ffi::CString::new("libssl.so.3").unwrap();
        // SAFETY: a valid C string; the handle is kept (never closed) for the process's life.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(
            !handle.is_null(),
            "libssl.so.3 (installed by cargo xtask setup)"
        );
        // Still young (read again on each rescan for `YOUNG`): now it maps libssl.
        rescan(&mut seen);
        let pids = seen.take_tls_pids();
        assert!(pids.contains(&me), "{me} not in {pids:?}");
        // Taken: the next call has only what a later rescan finds.
        assert!(seen.take_tls_pids().is_empty());
    }

    #[test]
    fn reads_each_process_once() {
        let mut s = Seen::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.new_pids(&[1, 2, 3], t0), vec![1, 2, 3]);
        // Still young: read again (a lazy dlopen of libssl).
        assert_eq!(s.new_pids(&[1, 2, 3], at(5)), vec![1, 2, 3]);
        assert_eq!(s.new_pids(&[1, 2, 3, 4], at(10)), vec![4]);
        assert!(s.new_pids(&[1, 2, 3, 4], at(30)).is_empty());
        // 2 exited; a process that reuses its pid later is read again.
        assert!(s.new_pids(&[1, 3, 4], at(31)).is_empty());
        assert_eq!(s.new_pids(&[1, 2, 3, 4], at(32)), vec![2]);
    }

    #[test]
    fn finds_libssl_in_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000002000-7f0000003000 r--p 00000000 fe:01 124 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
7f0000004000-7f0000005000 r-xp 00000000 fe:01 125 /opt/app/libssl.so.1.1
";
        let system = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
        assert_eq!(libs_in_maps(maps), [Mapped::Path(system.into())]);
        // Replaced by an upgrade while mapped: reached through the mapping, once.
        let upgraded = format!(
            "{maps}7f0000005000-7f0000006000 r--p 00000000 fe:01 126 {system} (deleted)\n\
             7f0000006000-7f0000007000 r-xp 00001000 fe:01 126 {system} (deleted)\n"
        );
        assert_eq!(
            libs_in_maps(&upgraded),
            [
                Mapped::Path(system.into()),
                Mapped::Deleted {
                    path: system.into(),
                    range: "7f0000005000-7f0000006000".into()
                }
            ]
        );
        assert!(is_libssl("/x/libssl.so.3.0.1"));
        assert!(!is_libssl("/x/libssl3.so"));
    }
}
