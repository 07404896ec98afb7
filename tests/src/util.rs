//! Small helpers: the root check, temporary directories, timestamps, polling.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fails the calling test (never skips it) unless it runs as root: the end-to-end tests create
/// network namespaces, veth pairs and nftables rules, and the daemon loads eBPF programs.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "guardian end-to-end tests must run as root (euid is {euid}): they create network \
         namespaces, veth pairs and nftables rules and run the eBPF daemon. Run them with \
         `sudo -E cargo test -p guardian-tests` or through `cargo xtask test`."
    );
}

/// The workspace root (parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A directory under the system temp dir, removed on drop unless the thread is panicking
/// (then it is kept, and its path printed, for debugging).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(kept {} for debugging)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The contents of every regular file under `dir` (recursively), each preceded by a
/// `==> path <==` line: for asserting that a journal or state file mentions something.
pub fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&format!("==> {} <==\n", p.display()));
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
        }
    }
    out
}

/// Parses an RFC 3339 UTC timestamp as guardian writes it (`2026-11-22T08:20:07.123456789Z`;
/// fewer fractional digits or none are accepted too). `None` if it is not of that form.
pub fn parse_ts(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let h: u64 = t.next()?.parse().ok()?;
    let m: u64 = t.next()?.parse().ok()?;
    let sec: u64 = t.next()?.parse().ok()?;
    if t.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return None;
    }
    let secs = days as u64 * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `ts` of an event as a [`SystemTime`]; panics with the event if it has none.
pub fn event_time(ev: &serde_json::Value) -> SystemTime {
    ev.get("ts")
        .and_then(|t| t.as_str())
        .and_then(parse_ts)
        .unwrap_or_else(|| panic!("event without a valid ts: {ev}"))
}

/// Milliseconds from `from` to `to` (negative if `to` is earlier).
pub fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -(e.duration().as_secs_f64() * 1e3),
    }
}

/// The factor latency bounds and waits are multiplied by: `GUARDIAN_TIME_SCALE` (a number
/// ≥ 1), set by `cargo xtask test --kernel` because a TCG VM runs several times slower than
/// the host; 1 when unset or not a number ≥ 1.
pub fn time_scale() -> f64 {
    std::env::var("GUARDIAN_TIME_SCALE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 1.0)
        .unwrap_or(1.0)
}

/// `d` times [`time_scale`].
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(time_scale())
}

/// Polls `f` every `step` until it returns `Some` or `timeout` (times [`time_scale`]) passes.
pub fn poll<T>(timeout: Duration, step: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + scaled(timeout);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guardian_timestamps() {
        let t = parse_ts("2026-11-22T08:20:07.123456789Z").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        // date -u -d 2026-11-22T08:20:07Z +%s
        assert_eq!(d.as_secs(), 1_795_335_607);
        assert_eq!(d.subsec_nanos(), 123_456_789);
        assert_eq!(
            parse_ts("1970-01-01T00:00:00Z").unwrap(),
            UNIX_EPOCH,
            "epoch"
        );
        assert_eq!(
            parse_ts("2000-02-29T23:59:59.5Z")
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap(),
            Duration::new(951_868_799, 500_000_000)
        );
        for bad in [
            "2026-11-22 08:20:07Z",
            "2026-11-22T08:20:07+01:00",
            "2026-13-22T08:20:07Z",
            "2026-11-22T08:20:07.1234567890Z",
            "x",
        ] {
            assert!(parse_ts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn millis_between_is_signed() {
        let a = UNIX_EPOCH + Duration::from_millis(1000);
        let b = UNIX_EPOCH + Duration::from_millis(1250);
        assert_eq!(millis_between(a, b), 250.0);
        assert_eq!(millis_between(b, a), -250.0);
    }
}
