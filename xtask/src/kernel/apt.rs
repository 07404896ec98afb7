//! Debian packages for the kernel matrix: a private apt configuration under
//! `target/kernels/apt/` (the host's sources are never changed), the kernel images and QEMU,
//! unpacked with `dpkg-deb -x` and cached in `target/kernels/`.
//!
//! QEMU is unpacked rather than installed: on this image `apt-get install qemu-system-x86`
//! would remove the backported qemu-utils. Its shared libraries are ordinary packages that
//! setup installs (`DEBIAN_PACKAGES`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// The kernels the matrix knows: label, Debian suite family and package-name pattern.
pub struct KernelSpec {
    pub label: &'static str,
    /// The Debian release whose package is used (for the docs and messages).
    pub release: &'static str,
    /// A regular expression for `apt-cache search --names-only`; the highest version wins.
    pattern: &'static str,
}

pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        label: "6.1",
        release: "Debian 12 (bookworm)",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    },
    KernelSpec {
        label: "6.12",
        release: "Debian 12 (bookworm-security, 6.12 backport)",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
    },
    KernelSpec {
        label: "5.10",
        release: "Debian 11 (bullseye)",
        pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64$",
    },
];

/// QEMU's packages (bookworm's 7.2): the emulator, its firmware and its data.
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
];

/// The Debian mirrors the host's apt already uses: (main archive, security archive), read
/// from `apt-cache policy` so that a machine with its own mirror keeps using it.
fn host_mirrors() -> Result<(String, String)> {
    let out = cmd::stdout(&mut cmd::new("apt-cache", ["policy"]))?;
    let (mut main, mut security) = (None, None);
    for line in out.lines() {
        // ` 500 http://mirror/debian bookworm/main amd64 Packages`
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !f[1].contains("://") {
            continue;
        }
        let suite = f[2].split('/').next().unwrap_or("");
        let uri = f[1].trim_end_matches('/').to_string();
        if suite.ends_with("-security") {
            security.get_or_insert(uri);
        } else if !suite.contains('-') && f[2].ends_with("/main") {
            main.get_or_insert(uri);
        }
    }
    match (main, security) {
        (Some(m), Some(s)) => Ok((m, s)),
        _ => bail!(
            "the host's apt has no Debian main and security archive configured \
             (`apt-cache policy` lists none): the kernel matrix downloads Debian's kernels"
        ),
    }
}

/// A private apt configuration: its own sources (bookworm and bullseye, main and security),
/// lists and cache, all under `dir`.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Writes the configuration and runs `apt-get update` on it once (then it is cached;
    /// delete `dir` to refresh).
    pub fn new(dir: &Path) -> Result<Apt> {
        let apt = Apt {
            dir: dir.to_path_buf(),
        };
        let stamp = dir.join("updated");
        if stamp.is_file() {
            return Ok(apt);
        }
        let (main, security) = host_mirrors()?;
        fs::create_dir_all(dir.join("lists/partial"))?;
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let key = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]";
        let mut sources = String::new();
        for suite in ["bookworm", "bullseye"] {
            sources.push_str(&format!("deb {key} {main} {suite} main\n"));
            sources.push_str(&format!("deb {key} {security} {suite}-security main\n"));
        }
        fs::write(dir.join("sources.list"), sources)?;
        eprintln!(
            "==> kernel matrix: apt-get update (private config in {})",
            dir.display()
        );
        cmd::run(&mut apt.get(&["update", "-q"])).context("apt-get update (private) failed")?;
        fs::write(stamp, "")?;
        Ok(apt)
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            "-oDir::Etc::SourceParts=-".into(),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            "-oAPT::Sandbox::User=root".into(),
        ]
    }

    fn get(&self, args: &[&str]) -> std::process::Command {
        let mut c = cmd::new("apt-get", self.options());
        c.args(args);
        c
    }

    /// The newest package whose name matches `pattern`.
    fn newest(&self, pattern: &str) -> Result<String> {
        let mut search = cmd::new("apt-cache", self.options());
        search.args(["search", "--names-only", pattern]);
        let out = cmd::stdout(&mut search)?;
        let mut names: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        names.sort_by(|a, b| version_cmp(a, b));
        names
            .pop()
            .with_context(|| format!("no Debian package matches {pattern}"))
    }

    /// Downloads `packages` into `into` (`apt-get download`).
    fn download(&self, packages: &[&str], into: &Path) -> Result<()> {
        fs::create_dir_all(into)?;
        let mut c = self.get(&["download", "-q"]);
        c.args(packages).current_dir(into);
        cmd::run(&mut c).context("apt-get download failed")
    }
}

/// Compares names by their digit runs as numbers (`6.1.0-9` < `6.1.0-57`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(s: &str) -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    }
    key(a).cmp(&key(b))
}

/// An unpacked kernel: the image, and the release name of its modules directory.
pub struct Kernel {
    pub dir: PathBuf,
    pub package: String,
    pub release: String,
    pub vmlinuz: PathBuf,
}

/// Fetches (once) and unpacks the kernel `spec` into `root/<label>/`, with `depmod` run.
pub fn kernel(apt: &Apt, root: &Path, spec: &KernelSpec) -> Result<Kernel> {
    let dir = root.join(spec.label);
    let stamp = dir.join("package");
    if !stamp.is_file() {
        let package = apt.newest(spec.pattern)?;
        eprintln!("==> kernel {}: {package} from {}", spec.label, spec.release);
        let debs = root.join("debs");
        apt.download(&[&package], &debs)?;
        let deb = find_deb(&debs, &package)?;
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        unpack(&deb, &dir)?;
        let release = modules_release(&dir)?;
        cmd::run(&mut cmd::new(
            "depmod",
            ["-b".as_ref(), dir.as_os_str(), release.as_ref()],
        ))
        .context("depmod failed (setup installs kmod)")?;
        fs::remove_file(&deb)?;
        fs::write(&stamp, &package)?;
    }
    let package = fs::read_to_string(&stamp)?.trim().to_string();
    let release = modules_release(&dir)?;
    let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!("{} has no {}", package, vmlinuz.display());
    }
    Ok(Kernel {
        dir,
        package,
        release,
        vmlinuz,
    })
}

/// Fetches (once) and unpacks QEMU into `root/qemu/`; returns that directory.
pub fn qemu(apt: &Apt, root: &Path) -> Result<PathBuf> {
    let dir = root.join("qemu");
    let bin = dir.join("usr/bin/qemu-system-x86_64");
    if bin.is_file() {
        return Ok(dir);
    }
    eprintln!("==> kernel matrix: QEMU ({})", QEMU_PACKAGES.join(" "));
    let debs = root.join("debs");
    apt.download(QEMU_PACKAGES, &debs)?;
    fs::create_dir_all(&dir)?;
    for p in QEMU_PACKAGES {
        let deb = find_deb(&debs, p)?;
        unpack(&deb, &dir)?;
        fs::remove_file(&deb)?;
    }
    if !bin.is_file() {
        bail!("the QEMU packages unpacked without {}", bin.display());
    }
    Ok(dir)
}

fn unpack(deb: &Path, into: &Path) -> Result<()> {
    cmd::run(&mut cmd::new(
        "dpkg-deb",
        ["-x".as_ref(), deb.as_os_str(), into.as_os_str()],
    ))
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(p);
        }
    }
    bail!(
        "apt-get download left no {package}_*.deb in {}",
        dir.display()
    )
}

fn modules_release(dir: &Path) -> Result<String> {
    let modules = dir.join("lib/modules");
    let mut names = fs::read_dir(&modules)
        .with_context(|| format!("{} is missing", modules.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    names
        .next()
        .with_context(|| format!("{} is empty", modules.display()))
}

#[cfg(test)]
mod tests {
    use super::version_cmp;

    #[test]
    fn newest_kernel_compares_numbers_not_text() {
        let mut v = [
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-10-amd64",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v.last(), Some(&"linux-image-6.1.0-57-amd64"));
    }
}
