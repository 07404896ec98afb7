//! Statuses over TLS without a uprobe on `SSL_write` (guardian-ebpf/src/tls_record.rs): on
//! the socket tracepoints (Linux 6.3+), the programs scan OpenSSL's `SSL` object at the sends
//! that follow the first `SSL_write`s; once the scans name one word for each of the three
//! values (`guardian_common::tls_record::decide`), the programs read statuses at the sends
//! and the `SSL_write` probes are detached. Every breakpoint trap per response is gone: the
//! server's, and those of every OpenSSL client on the host.
//!
//! The offsets belong to one OpenSSL build: they are used only while every libssl attached
//! has the same build (its GNU build id, else the file's SHA-256). A libssl of another build
//! found later (a container started with another distribution's) puts the `SSL_write` probes
//! back on every library, for good; so does a calibration that ends without an answer.
use std::path::{Path, PathBuf};

use aya::{
    maps::{Array, RingBuf},
    Ebpf,
};
use guardian_common::tls_record::{decide, exhausted, fold, Calibration, RecordLayout, Snapshot};
use object::Object;
use sha2::{Digest, Sha256};

/// Where reading the record layer stands.
#[derive(Default)]
pub enum Record {
    /// Not tried: no socket tracepoints (the syscall hook reads no socket result to read it
    /// at), or the calibration could not be switched on.
    #[default]
    Off,
    /// The programs sample the sends after `SSL_write`s; what the samples showed so far.
    Calibrating(Box<Calibration>),
    /// The statuses come from the record layer; no `SSL_write` probe is attached.
    On { layout: RecordLayout, build: Build },
    /// The `SSL_write` probes stay, with why.
    Kept(String),
}

impl Record {
    /// For the `attached` event.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Record::Off => serde_json::json!("off"),
            Record::Calibrating(_) => serde_json::json!("calibrating"),
            Record::On { layout, build } => {
                serde_json::json!({"wpend_buf": layout.buf, "wpend_tot": layout.tot, "wbuf_left": layout.left, "build": build.0})
            }
            Record::Kept(why) => serde_json::json!({"kept_uprobe": why}),
        }
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// What identifies a libssl build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build(String);

impl Build {
    /// The GNU build id of an ELF file, else the SHA-256 of its bytes.
    pub fn of(bytes: &[u8]) -> Build {
        match object::File::parse(bytes)
            .ok()
            .and_then(|f| f.build_id().ok().flatten())
        {
            Some(id) => Build(format!("build-id {}", hex(id))),
            None => Build(format!("sha256 {}", hex(&Sha256::digest(bytes)))),
        }
    }

    fn of_file(p: &Path) -> Result<Build, String> {
        let bytes = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        Ok(Build::of(&bytes))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The one build of `libs`, or why there is none.
fn one_build(libs: &[PathBuf]) -> Result<Build, String> {
    let mut found: Option<Build> = None;
    for l in libs {
        let b = Build::of_file(l)?;
        match &found {
            Some(f) if *f != b => {
                return Err(format!(
                    "the libssl files attached are of different builds ({} is {}, another {})",
                    l.display(),
                    b.0,
                    f.0
                ))
            }
            _ => found = Some(b),
        }
    }
    found.ok_or_else(|| "no libssl is attached".to_string())
}

fn write_layout(ebpf: &mut Ebpf, l: RecordLayout) -> Result<(), String> {
    let map = ebpf
        .map_mut("TLS_RECORD")
        .ok_or("map TLS_RECORD is missing from the eBPF object")?;
    let mut a: Array<_, RecordLayout> = Array::try_from(map).map_err(|e| e.to_string())?;
    a.set(0, l, 0).map_err(|e| e.to_string())
}

/// Folds the samples the programs left into `c`.
fn drain(ebpf: &mut Ebpf, c: &mut Calibration) -> Result<(), String> {
    let map = ebpf
        .map_mut("TLS_RECORD_SNAPS")
        .ok_or("map TLS_RECORD_SNAPS is missing from the eBPF object")?;
    let mut ring = RingBuf::try_from(map).map_err(|e| e.to_string())?;
    while let Some(item) = ring.next() {
        if item.len() < std::mem::size_of::<Snapshot>() {
            continue;
        }
        // SAFETY: the record is a whole `Snapshot` (length checked), read unaligned.
        let s = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const Snapshot) };
        fold(c, &s);
    }
    Ok(())
}

/// Starts the calibration (the socket tracepoints are attached with the OpenSSL probes).
pub fn start(ebpf: &mut Ebpf, record: &mut Record) {
    let on = RecordLayout {
        calibrate: 1,
        ..Default::default()
    };
    *record = match write_layout(ebpf, on) {
        Ok(()) => Record::Calibrating(Box::default()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot calibrate OpenSSL's record layer: SSL_write keeps its uprobe");
            Record::Kept(e)
        }
    };
}

/// Stops the calibration, or the reading of the record layer: the `SSL_write` probes stay
/// (or are back), for `why`.
pub fn keep(ebpf: &mut Ebpf, record: &mut Record, why: String) {
    tracing::info!(reason = %why, "OpenSSL's record layer is not read: SSL_write keeps its uprobe");
    if let Err(e) = write_layout(ebpf, RecordLayout::default()) {
        tracing::warn!(error = %e, "cannot stop the record layer's calibration");
    }
    *record = Record::Kept(why);
}

/// One step of the calibration (every rescan), with the libraries attached, `libs`: when
/// the scans have named the words, the programs read them; returns true then, and the caller
/// detaches the `SSL_write` probes.
pub fn tick(ebpf: &mut Ebpf, libs: &[PathBuf], record: &mut Record) -> bool {
    let Record::Calibrating(c) = record else {
        return false;
    };
    if let Err(e) = drain(ebpf, c) {
        keep(
            ebpf,
            record,
            format!("cannot read the calibration samples: {e}"),
        );
        return false;
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        let seen: Vec<Vec<(usize, u32)>> = c
            .hits
            .iter()
            .zip(c.samples)
            .map(|(h, n)| {
                (h.iter().enumerate())
                    .filter(|(_, x)| **x * 4 >= n && n > 0)
                    .map(|(w, x)| (w * 8, *x))
                    .collect()
            })
            .collect();
        tracing::debug!(samples = ?c.samples, offsets_hits = ?seen, "record layer calibration");
    }
    let Some(layout) = decide(c) else {
        if exhausted(c) {
            let why = format!(
                "no one word held each value in {:?} samples of the SSL object",
                c.samples
            );
            keep(ebpf, record, why);
        }
        return false;
    };
    let build = match one_build(libs) {
        Ok(b) => b,
        Err(e) => {
            keep(ebpf, record, e);
            return false;
        }
    };
    // The programs read the record layer first, and the probe's hits do nothing from then
    // on; then the probes go.
    if let Err(e) = write_layout(ebpf, layout) {
        keep(
            ebpf,
            record,
            format!("cannot set the record layer's offsets: {e}"),
        );
        return false;
    }
    tracing::info!(
        wpend_buf = layout.buf,
        wpend_tot = layout.tot,
        wbuf_left = layout.left,
        build = %build.0,
        "TLS statuses read from OpenSSL's record layer at the sends: SSL_write's uprobes detached"
    );
    *record = Record::On { layout, build };
    true
}

/// What libraries found by a rescan, `libs`, mean for the record layer: nothing (it is not
/// read: attach every probe), nothing either (they are of its build: attach all but
/// `SSL_write`'s), or why it can no longer be read: a library of another build. Then the
/// caller puts the `SSL_write` probes back on the libraries attached before, and calls
/// [`keep`].
pub fn new_libs(record: &Record, libs: &[PathBuf]) -> Result<bool, String> {
    let Record::On { build, .. } = record else {
        return Ok(false);
    };
    match libs.iter().find_map(|l| match Build::of_file(l) {
        Ok(b) if b == *build => None,
        Ok(b) => Some(format!("{} is {}, not {}", l.display(), b.0, build.0)),
        Err(e) => Some(e),
    }) {
        None => Ok(true),
        Some(why) => Err(format!("a libssl of another build appeared: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_its_build_id_else_its_bytes() {
        let lib = std::fs::read("/proc/self/exe").unwrap();
        let b = Build::of(&lib);
        assert!(
            b.0.starts_with("build-id ") || b.0.starts_with("sha256 "),
            "{b:?}"
        );
        assert_eq!(Build::of(&lib), b);
        let text = b"not an ELF file";
        assert_eq!(
            Build::of(text).0,
            format!("sha256 {}", hex(&Sha256::digest(text)))
        );
        assert_ne!(Build::of(b"another"), Build::of(text));
    }

    #[test]
    fn libraries_of_two_builds_have_no_one_build() {
        let dir = std::env::temp_dir().join(format!("guardian-builds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"one").unwrap();
        std::fs::write(&c, b"two").unwrap();
        assert!(one_build(&[a.clone(), b.clone()]).is_ok());
        let e = one_build(&[a, b, c]).unwrap_err();
        assert!(e.contains("different builds"), "{e}");
        assert!(one_build(&[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
