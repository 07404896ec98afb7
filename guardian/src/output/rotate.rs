//! The file sink: NDJSON appended to a file, rotated by size (`events.ndjson` →
//! `events.ndjson.1` … `.keep`, newest first), reopened on request (SIGUSR1, for logrotate or
//! an operator who moved the file away). A line is never split across files.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    /// 0: never rotate.
    max_bytes: u64,
    keep: u32,
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let (file, size) = open_append(path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            keep,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes whole lines (each ending in `\n`), rotating before any line that would take the
    /// file past `max_bytes` (unless the file is empty: an oversized line gets a file alone).
    pub fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut start = 0;
        let mut end = 0;
        for line in buf.split_inclusive(|&b| b == b'\n') {
            let len = line.len() as u64;
            let pending = (end - start) as u64;
            if self.max_bytes > 0
                && self.size + pending > 0
                && self.size + pending + len > self.max_bytes
            {
                self.file.write_all(&buf[start..end])?;
                self.size += pending;
                self.rotate()?;
                start = end;
            }
            end += line.len();
        }
        self.file.write_all(&buf[start..end])?;
        self.size += (end - start) as u64;
        Ok(())
    }

    /// Shifts `path.N` to `path.N+1` (dropping the oldest), `path` to `path.1`, and starts an
    /// empty `path`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.reopen()
    }

    /// Opens `path` again (created if it was moved away or deleted).
    pub fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("guardian-rot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn lines(n: usize, width: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut l = format!("{i:0>w$}", w = width - 1).into_bytes();
            l.push(b'\n');
            out.extend(l);
        }
        out
    }
    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_before_exceeding_and_keeps_n_files() {
        let d = dir("sizes");
        let p = d.0.join("events.ndjson");
        // 10-byte lines, at most 35 bytes per file: 3 lines each.
        let mut f = RotatingFile::open(&p, 35, 2).unwrap();
        for chunk in lines(10, 10).chunks(20) {
            f.write_lines(chunk).unwrap();
        }
        // 10 lines: files of 3 lines; the newest (line 9) is current, 6–8 in .1, 3–5 in .2,
        // 0–2 dropped (keep = 2).
        assert_eq!(read(&p), "000000009\n");
        assert_eq!(read(&numbered(&p, 1)), "000000006\n000000007\n000000008\n");
        assert_eq!(read(&numbered(&p, 2)), "000000003\n000000004\n000000005\n");
        assert!(!numbered(&p, 3).exists());
    }

    #[test]
    fn never_splits_a_line_and_an_oversized_line_gets_a_file_alone() {
        let d = dir("split");
        let p = d.0.join("e.ndjson");
        let mut f = RotatingFile::open(&p, 4096, 3).unwrap();
        let mut buf = lines(30, 100); // 3000 bytes
        buf.extend(lines(1, 5000)); // one line bigger than max_bytes
        buf.extend(lines(2, 100));
        f.write_lines(&buf).unwrap();
        let all: Vec<String> = [3, 2, 1, 0]
            .iter()
            .map(|&n| {
                if n == 0 {
                    read(&p)
                } else {
                    read(&numbered(&p, n))
                }
            })
            .collect();
        for (i, text) in all.iter().enumerate() {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "file {i} ends mid-line"
            );
            assert!(
                text.len() <= 4096 || text.lines().count() == 1,
                "file {i}: {}",
                text.len()
            );
        }
        assert_eq!(
            all.concat(),
            String::from_utf8(buf).unwrap(),
            "nothing lost or reordered"
        );
        assert_eq!(all[2].len(), 5000, "the oversized line alone");
    }

    #[test]
    fn keep_zero_discards_and_zero_max_never_rotates() {
        let d = dir("zero");
        let p = d.0.join("e.ndjson");
        let mut f = RotatingFile::open(&p, 4096, 0).unwrap();
        f.write_lines(&lines(50, 100)).unwrap();
        assert_eq!(read(&p).len(), 1000);
        assert!(!numbered(&p, 1).exists());
        let q = d.0.join("n.ndjson");
        let mut f = RotatingFile::open(&q, 0, 3).unwrap();
        f.write_lines(&lines(100, 100)).unwrap();
        assert_eq!(read(&q).len(), 10_000);
    }

    #[test]
    fn reopen_after_a_move_starts_a_new_file_and_appends_to_an_existing_one() {
        let d = dir("reopen");
        let p = d.0.join("e.ndjson");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = RotatingFile::open(&p, 0, 0).unwrap();
        f.write_lines(b"a\n").unwrap();
        std::fs::rename(&p, d.0.join("moved")).unwrap();
        f.write_lines(b"b\n").unwrap(); // still into the moved file
        f.reopen().unwrap();
        f.write_lines(b"c\n").unwrap();
        assert_eq!(read(&d.0.join("moved")), "old\na\nb\n");
        assert_eq!(read(&p), "c\n");
    }
}
