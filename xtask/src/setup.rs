//! `cargo xtask setup`: install or verify everything the build and tests need.
//!
//! Every check is cheap, so a fully set up machine passes in well under a second;
//! anything missing is installed non-interactively. Setup also prepares this
//! process's environment (PATH, `GUARDIAN_EBPF_TOOLCHAIN`) so that every command
//! `build`, `run` and `test` start afterwards inherits it.

use std::collections::HashSet;
use std::env;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd;

/// Environment variable naming the nightly toolchain that builds the eBPF programs
/// (read by guardian/build.rs). Setting it before setup pins a different toolchain.
pub const TOOLCHAIN_ENV: &str = "GUARDIAN_EBPF_TOOLCHAIN";
/// Nightly whose LLVM (22) matches bpf-linker's.
pub const DEFAULT_TOOLCHAIN: &str = "nightly-2026-05-20";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    "iproute2",
    "nftables",
    "iperf3",
    // `cargo xtask bench peers`: the tools guardian is compared with.
    "bpftrace",
    "libbpf-tools",
    "hping3",
    "bpftool",
    "jq",
    "ethtool",
    // promtool (`promtool check/test rules` on docs/deploy/prometheus-rules.yaml) and the
    // Prometheus server of the three-node fleet check (`cargo xtask fleet`).
    "prometheus",
    // `cargo xtask package`: the image (buildah, FROM scratch), its test (podman) and the
    // fresh Debian root the .deb is installed into (debootstrap).
    "buildah",
    "podman",
    "debootstrap",
    // `cargo xtask systemd`: systemd-nspawn boots the .deb under a real systemd.
    "systemd-container",
    // e2e http: nginx as reverse proxy, curl as client, openssl for test certificates.
    "nginx",
    "curl",
    "openssl",
    "python3",
    // e2e tls_alerts: gnutls-serv, a TLS server that is not OpenSSL.
    "gnutls-bin",
    // `cargo xtask bench http`: the load generator in front of nginx.
    "wrk",
    // `cargo xtask bench http-share`: CPU samples of every CPU during the load.
    "linux-perf",
    // `cargo xtask test --kernel`: the VM's initramfs (busybox, cpio, the modules' depmod and
    // modprobe; xz and zstd decompress them) and the shared libraries of QEMU, which the
    // kernel matrix unpacks from Debian's packages (xtask/src/kernel/apt.rs).
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "zstd",
    "libcapstone4",
    "libfdt1",
    "libpmem1",
    "librdmacm1",
    "libibverbs1",
    "libslirp0",
    "libvdeplug2",
    // e2e control_planes: real route owners beside guardian.
    "bird2",
    "dnsmasq",
    "isc-dhcp-client",
    "keepalived",
];

/// Runs every setup step in order and returns the eBPF toolchain in use.
pub fn setup() -> Result<String> {
    let start = Instant::now();
    preflight()?;
    put_cargo_bin_first_on_path();
    mount_if_needed("/sys/kernel/tracing", "tracefs", "nodev")?;
    mount_if_needed("/sys/fs/bpf", "bpf", "bpf")?;
    debian_packages()?;
    let toolchain = nightly_toolchain()?;
    env::set_var(TOOLCHAIN_ENV, &toolchain);
    bpf_linker()?;
    eprintln!("ok: setup complete ({})", cmd::secs(start.elapsed()));
    Ok(toolchain)
}

fn preflight() -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(
            "guardian is an eBPF daemon and only builds and runs on Linux, not on {}",
            env::consts::OS
        );
    }
    if !is_root() {
        bail!("guardian's setup and tests need root: run as root (sudo cargo xtask ...)");
    }
    if !Path::new(BTF_PATH).exists() {
        bail!(
            "this kernel exposes no BTF at {BTF_PATH}: guardian needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!("ok: root on Linux {} with kernel BTF", release.trim());
    Ok(())
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// `$CARGO_HOME/bin`, or `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    match env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home).join("bin")),
        _ => env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")),
    }
}

/// Puts the cargo bin directory first on PATH, so this process and every child
/// (rustc's `-C linker=bpf-linker` included) finds the bpf-linker that setup checked.
fn put_cargo_bin_first_on_path() {
    let Some(bin) = cargo_bin_dir() else { return };
    let old = env::var_os("PATH").unwrap_or_default();
    let rest = env::split_paths(&old).filter(|p| *p != bin);
    if let Ok(path) = env::join_paths(std::iter::once(bin.clone()).chain(rest)) {
        env::set_var("PATH", path);
    }
}

fn mount_if_needed(path: &str, fstype: &str, source: &str) -> Result<()> {
    if cmd::succeeds(&mut cmd::new("mountpoint", ["-q", path])) {
        eprintln!("ok: {fstype} mounted at {path}");
        return Ok(());
    }
    eprintln!("mounting: {fstype} at {path}");
    cmd::run(&mut cmd::new("mount", ["-t", fstype, source, path]))
        .with_context(|| format!("could not mount {fstype} at {path}"))
}

/// The packages of `DEBIAN_PACKAGES` that dpkg does not report as installed (`ii`).
fn missing_debian_packages() -> Result<Vec<&'static str>> {
    let mut query = cmd::new("dpkg-query", ["-W", "-f=${Package} ${db:Status-Abbrev}\n"]);
    query.args(DEBIAN_PACKAGES);
    // dpkg-query exits 1 when a package is unknown; its stdout still lists the rest.
    let out = cmd::stdout_any(&mut query).map_err(|_| {
        anyhow!(
            "dpkg-query was not found: setup installs packages with apt and supports only \
             Debian-based systems, so install these yourself: {}",
            DEBIAN_PACKAGES.join(" ")
        )
    })?;
    let installed: HashSet<&str> = out
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            (fields.next()? == "ii").then_some(name)
        })
        .collect();
    Ok(DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect())
}

fn debian_packages() -> Result<()> {
    let missing = missing_debian_packages()?;
    if missing.is_empty() {
        eprintln!("ok: debian packages ({} present)", DEBIAN_PACKAGES.len());
        return Ok(());
    }
    eprintln!("installing: debian packages {} ...", missing.join(" "));
    cmd::run(&mut cmd::new("apt-get", ["update"])).context("apt-get update failed")?;
    let mut install = cmd::new("apt-get", ["install", "-y", "--no-install-recommends"]);
    install
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd::run(&mut install).context("could not install the Debian packages")?;
    let still = missing_debian_packages()?;
    if !still.is_empty() {
        bail!(
            "apt-get finished but these packages are still not installed: {}",
            still.join(" ")
        );
    }
    eprintln!("ok: debian packages installed");
    Ok(())
}

/// Names of installed rustup toolchains, e.g. `nightly-2026-05-20-x86_64-unknown-linux-gnu`.
fn installed_toolchains() -> Result<Vec<String>> {
    let out = cmd::stdout(&mut rustup(["toolchain", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Whether `name` (e.g. `nightly` or `nightly-2026-05-20`) is installed, with or
/// without a host triple. `nightly` does not match a dated nightly.
fn has_toolchain(installed: &[String], name: &str) -> bool {
    installed.iter().any(|t| match t.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest.starts_with('-') && !rest[1..].starts_with(|c: char| c.is_ascii_digit()),
        None => false,
    })
}

/// A `rustup` command; rustup prints its own backtraces on errors when RUST_BACKTRACE
/// is set, so it is cleared: the error line is what matters here.
fn rustup<I, S>(args: I) -> std::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = cmd::new("rustup", args);
    c.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

/// A `rustc +toolchain` probe that never makes rustup auto-install anything.
fn rustc_plus(toolchain: &str, arg: &str) -> std::process::Command {
    let mut c = cmd::new("rustc", [format!("+{toolchain}"), arg.to_owned()]);
    c.env("RUSTUP_AUTO_INSTALL", "0");
    c
}

fn has_rust_src(toolchain: &str) -> bool {
    let Ok(sysroot) = cmd::stdout(&mut rustc_plus(toolchain, "--print=sysroot")) else {
        return false;
    };
    Path::new(sysroot.trim())
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
}

fn nightly_toolchain() -> Result<String> {
    if cmd::which("rustup").is_none() {
        bail!(
            "rustup was not found in PATH: install it from https://rustup.rs (the eBPF \
             programs need a nightly toolchain with rust-src)"
        );
    }
    let pinned = env::var(TOOLCHAIN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TOOLCHAIN.to_owned());
    if has_toolchain(&installed_toolchains()?, &pinned) && has_rust_src(&pinned) {
        eprintln!("ok: rust toolchain {pinned} with rust-src");
        return Ok(pinned);
    }
    eprintln!("installing: rust toolchain {pinned} with rust-src ...");
    let mut install = rustup(["toolchain", "install", &pinned]);
    install.args(["--profile", "minimal", "--component", "rust-src"]);
    match cmd::run(&mut install) {
        Ok(()) if has_rust_src(&pinned) => {
            eprintln!("ok: rust toolchain {pinned} installed");
            return Ok(pinned);
        }
        Ok(()) => eprintln!("warning: {pinned} installed but its rust-src is missing"),
        Err(e) => eprintln!("warning: {e:#}"),
    }
    fallback_nightly(&pinned)
}

/// Uses the plain `nightly` toolchain when it is installed and built on LLVM 22.
fn fallback_nightly(pinned: &str) -> Result<String> {
    let unusable = || {
        anyhow!(
            "could not install the Rust toolchain {pinned} and there is no `nightly` \
             toolchain built on LLVM 22 to use instead: install {pinned} with \
             `rustup toolchain install {pinned} --component rust-src`"
        )
    };
    if !has_toolchain(&installed_toolchains()?, "nightly") {
        return Err(unusable());
    }
    let version = cmd::stdout(&mut rustc_plus("nightly", "-vV")).unwrap_or_default();
    if !version.lines().any(|l| l.starts_with("LLVM version: 22.")) {
        return Err(unusable());
    }
    eprintln!("falling back: rust toolchain nightly (LLVM 22), adding rust-src ...");
    cmd::run(&mut rustup([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .context("could not add rust-src to the nightly toolchain")?;
    eprintln!("ok: rust toolchain nightly with rust-src");
    Ok("nightly".to_owned())
}

/// Why the bpf-linker on PATH is unusable, or `None` if it is fine.
fn bpf_linker_problem() -> Option<String> {
    let Some(path) = cmd::which("bpf-linker") else {
        return Some("not installed".into());
    };
    let version = match cmd::stdout(&mut cmd::new(&path, ["--version"])) {
        Ok(v) => v,
        Err(e) => return Some(format!("{e:#}")),
    };
    if version.split_whitespace().nth(1) != Some(BPF_LINKER_VERSION) {
        return Some(format!("found `{}` at {}", version.trim(), path.display()));
    }
    let ldd = cmd::stdout_any(&mut cmd::new("ldd", [&path])).unwrap_or_default();
    let missing: Vec<&str> = ldd
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if !missing.is_empty() {
        return Some(format!("its libraries are missing: {}", missing.join(", ")));
    }
    None
}

fn bpf_linker() -> Result<()> {
    let Some(why) = bpf_linker_problem() else {
        eprintln!("ok: bpf-linker {BPF_LINKER_VERSION}");
        return Ok(());
    };
    eprintln!("installing: bpf-linker {BPF_LINKER_VERSION} ({why}); this takes a few minutes ...");
    let mut install = cmd::cargo(["install", "bpf-linker", "--version", BPF_LINKER_VERSION]);
    install
        .args([
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX);
    cmd::run(&mut install).context("could not install bpf-linker")?;
    if let Some(why) = bpf_linker_problem() {
        bail!("bpf-linker {BPF_LINKER_VERSION} was installed but is still unusable: {why}");
    }
    eprintln!("ok: bpf-linker {BPF_LINKER_VERSION} installed");
    Ok(())
}
