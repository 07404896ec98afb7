//! OpenSSL uprobes (guardian-ebpf/src/tls.rs): every `libssl.so.3` that a process maps, found
//! in `/proc/*/maps` (through `/proc/PID/root`, so containers' copies count), plus the
//! system's own, attached for all processes. One attachment per library file (deduplicated by
//! device and inode): processes started later from those files are covered too.
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::{
    programs::{
        uprobe::{UProbeLinkId, UProbeScope},
        UProbe,
    },
    Ebpf,
};

use super::ProbeError;

/// (program, symbol) per library; `tls_read_exit` is the uretprobe of both reads.
pub const PROBES: [(&str, &str); 6] = [
    ("tls_read_enter", "SSL_read"),
    ("tls_read_exit", "SSL_read"),
    ("tls_read_ex_enter", "SSL_read_ex"),
    ("tls_read_exit", "SSL_read_ex"),
    ("tls_write", "SSL_write"),
    ("tls_write", "SSL_write_ex"),
];

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
    links: Vec<(&'static str, UProbeLinkId)>,
    /// Libraries that could not be attached, with why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Whether a mapped file is an OpenSSL 3 libssl (`libssl.so.3`, maybe with a suffix).
pub fn is_libssl(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or("");
    base == "libssl.so.3" || base.starts_with("libssl.so.3.")
}

/// The libssl paths in one `/proc/PID/maps` text.
pub fn libs_in_maps(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && is_libssl(p))
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

/// Every distinct libssl file: the system's, then those mapped by running processes.
pub fn discover() -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |p: PathBuf| {
        if let Ok(m) = std::fs::metadata(&p) {
            if seen.insert((m.dev(), m.ino())) {
                out.push(p);
            }
        }
    };
    for p in SYSTEM {
        add(PathBuf::from(p));
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for lib in libs_in_maps(&maps) {
            add(Path::new(&format!("/proc/{pid}/root")).join(lib.trim_start_matches('/')));
        }
    }
    out
}

/// Attaches every probe to every library; a library that fails is listed, not fatal.
pub fn attach(ebpf: &mut Ebpf, libs: &[PathBuf]) -> Result<Attachment, ProbeError> {
    let mut a = Attachment::default();
    for (prog, _) in PROBES {
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
        for (prog, sym) in PROBES {
            let p: &mut UProbe = match ebpf.program_mut(prog).map(TryInto::try_into) {
                Some(Ok(p)) => p,
                _ => return Err(ProbeError::MissingProgram(prog)),
            };
            match p.attach(sym, lib, UProbeScope::AllProcesses) {
                Ok(l) => links.push((prog, l)),
                Err(e) => {
                    err = Some(format!("{sym}: {e}"));
                    break;
                }
            }
        }
        match err {
            None => {
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
    fn finds_libssl_in_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000002000-7f0000003000 r--p 00000000 fe:01 124 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
7f0000004000-7f0000005000 r-xp 00000000 fe:01 125 /opt/app/libssl.so.1.1
";
        assert_eq!(
            libs_in_maps(maps),
            vec!["/usr/lib/x86_64-linux-gnu/libssl.so.3".to_string()]
        );
        assert!(is_libssl("/x/libssl.so.3.0.1"));
        assert!(!is_libssl("/x/libssl3.so"));
    }
}
