//! `cargo xtask package`: a Debian package and an OCI image, so hosts install guardian without
//! a toolchain. Both go to `target/package/`.
//!
//! - The .deb is laid out by hand and built with `dpkg-deb --root-owner-group` (Debian's own
//!   tool, already on every Debian host): cargo-deb would be one more binary to install from
//!   crates.io for a layout of five files. Contents: `/usr/sbin/guardian`, the unit in
//!   `/lib/systemd/system` (ExecStart pointed at /usr/sbin), `/etc/guardian/guardian.toml` as a
//!   conffile, `/usr/share/doc/guardian` (README, operations, the Prometheus rules and
//!   dashboard, the DaemonSet), the bash, zsh and fish completions and `guardian.1.gz`. It does not start the service: the operator reviews the config
//!   (observe mode by default) and runs `systemctl enable --now guardian`.
//! - The image is built `FROM scratch` with Debian's buildah (no base image is pulled): the
//!   release binary plus exactly the shared objects `ldd` lists (glibc, libgcc_s, the loader),
//!   which makes it self-contained without a second, static build. buildah keeps its storage
//!   under `target/package/containers`, not the host's, and the image leaves as an OCI archive
//!   for `podman load` or `ctr -n k8s.io images import`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::{cmd, run, setup};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const IMAGE: &str = "localhost/guardian";

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Package this guardian binary instead of building the release one (it must be a
    /// production build: no test features)
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Build only: skip the install test (fresh Debian root) and the podman test
    #[arg(long)]
    pub no_test: bool,
}

pub fn package(args: PackageArgs) -> Result<ExitCode> {
    setup::setup()?;
    let bin = match args.bin {
        Some(b) => std::fs::canonicalize(&b).with_context(|| format!("{}", b.display()))?,
        None => run::build_guardian()?,
    };
    let out = out_dir()?;
    let deb = build_deb(&bin, &out)?;
    eprintln!("built: {}", deb.display());
    let oci = build_oci(&bin, &out)?;
    eprintln!("built: {} (image {IMAGE}:{VERSION})", oci.display());
    if args.no_test {
        return Ok(ExitCode::SUCCESS);
    }
    let debroot = debian_root()?;
    let start = std::time::Instant::now();
    let root = cmd::repo_root()?;
    let mut c = cmd::cargo(["test", "--release"]);
    c.args(cmd::HOST_PACKAGES).args(cmd::TEST_FEATURES).args([
        "--test",
        "e2e",
        "--",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "package::",
    ]);
    c.current_dir(&root)
        .env("GUARDIAN_DEB", &deb)
        .env("GUARDIAN_OCI", &oci)
        .env("GUARDIAN_DEBROOT", &debroot);
    eprintln!("==> package tests: {}", cmd::display(&c));
    cmd::run(&mut c)?;
    eprintln!("ok: package tests ({})", cmd::secs(start.elapsed()));
    Ok(ExitCode::SUCCESS)
}

/// A Debian minbase root for the install test, made once with debootstrap from the mirror
/// apt uses and kept under `target/debootstrap/` (about 30 s the first time).
pub fn debian_root() -> Result<PathBuf> {
    let dir = cmd::target_dir()?.join("debootstrap");
    let root = dir.join("bookworm");
    let done = dir.join("bookworm.done");
    if done.exists() {
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir)?;
    cmd::run(
        cmd::new("debootstrap", ["--variant=minbase", "bookworm"])
            .arg(&root)
            .arg(MIRROR),
    )?;
    std::fs::write(&done, "")?;
    Ok(root)
}

/// The Debian mirror debootstrap uses (the one apt is configured with here).
const MIRROR: &str = "http://deb.debian.org/debian";

pub fn out_dir() -> Result<PathBuf> {
    Ok(cmd::target_dir()?.join("package"))
}

fn arch() -> Result<String> {
    Ok(
        cmd::stdout(&mut cmd::new("dpkg", ["--print-architecture"]))?
            .trim()
            .to_owned(),
    )
}

/// The newest `GLIBC_x.y` symbol version the binary needs (for `Depends: libc6 (>= x.y)`).
fn glibc_needed(bin: &Path) -> Result<String> {
    let syms = cmd::stdout(cmd::new("objdump", ["-T"]).arg(bin))?;
    let mut versions: Vec<Vec<u32>> = syms
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .map(|v| v.split('.').filter_map(|n| n.parse().ok()).collect())
        .collect();
    versions.sort();
    let v = versions
        .last()
        .context("no GLIBC symbol versions in the binary")?;
    Ok(v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let text = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to.parent().unwrap())?;
    std::fs::write(to, text)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The unit as packaged: the binary in /usr/sbin, the docs in /usr/share/doc.
pub fn packaged_unit(root: &Path) -> Result<String> {
    let unit = std::fs::read_to_string(root.join("docs/deploy/guardian.service"))?;
    Ok(unit
        .replace("/usr/local/sbin/guardian", "/usr/sbin/guardian")
        .replace("/usr/local/share/doc/guardian", "/usr/share/doc/guardian"))
}

const POSTINST: &str = "#!/bin/sh\nset -e\n# Not started: review /etc/guardian/guardian.toml (observe mode by default), then\n# systemctl enable --now guardian\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n";
const PRERM: &str = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ] && [ \"$1\" = remove ]; then\n  systemctl disable --now guardian.service >/dev/null 2>&1 || true\nfi\n";
const POSTRM: &str = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\nif [ \"$1\" = purge ]; then rm -rf /var/lib/guardian /var/log/guardian; fi\n";

pub fn build_deb(bin: &Path, out: &Path) -> Result<PathBuf> {
    let root = cmd::repo_root()?;
    let arch = arch()?;
    let stage = out.join(format!("guardian_{VERSION}_{arch}"));
    let _ = std::fs::remove_dir_all(&stage);
    copy(bin, &stage.join("usr/sbin/guardian"), 0o755)?;
    shell_files(bin, &stage)?;
    write(
        &stage.join("lib/systemd/system/guardian.service"),
        &packaged_unit(&root)?,
        0o644,
    )?;
    copy(
        &root.join("docs/deploy/guardian.toml"),
        &stage.join("etc/guardian/guardian.toml"),
        0o644,
    )?;
    let doc = stage.join("usr/share/doc/guardian");
    for f in [
        "README.md",
        "docs/operations.md",
        "docs/events.md",
        "docs/faults.md",
        "docs/deploy/prometheus-rules.yaml",
        "docs/deploy/grafana-dashboard.json",
        "docs/deploy/daemonset.yaml",
    ] {
        let name = Path::new(f).file_name().unwrap();
        copy(&root.join(f), &doc.join(name), 0o644)?;
    }
    write(
        &doc.join("copyright"),
        "guardian\nLicense: see the workspace Cargo.toml (license field) of the source repository.\n",
        0o644,
    )?;
    let size_kib = dir_size(&stage)? / 1024;
    let control = format!(
        "Package: guardian\nVersion: {VERSION}\nArchitecture: {arch}\nMaintainer: guardian developers <guardian@localhost>\nSection: net\nPriority: optional\nInstalled-Size: {size_kib}\nDepends: libc6 (>= {}), libgcc-s1\nDescription: eBPF watch and repair of the kernel network stack (layers 2-4)\n guardian detects link, route and transport faults through eBPF and heals them\n (observe mode by default). Start with: systemctl enable --now guardian\n",
        glibc_needed(bin)?
    );
    write(&stage.join("DEBIAN/control"), &control, 0o644)?;
    write(
        &stage.join("DEBIAN/conffiles"),
        "/etc/guardian/guardian.toml\n",
        0o644,
    )?;
    write(&stage.join("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&stage.join("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&stage.join("DEBIAN/postrm"), POSTRM, 0o755)?;
    let deb = out.join(format!("guardian_{VERSION}_{arch}.deb"));
    cmd::run(
        cmd::new("dpkg-deb", ["--root-owner-group", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// Shell completions and the man page, generated by the binary itself (clap_complete and
/// clap_mangen behind the hidden `guardian completions SHELL` and `guardian manpage`, so they
/// follow the real flags), at the paths Debian's bash-completion, zsh, fish and man-db read.
fn shell_files(bin: &Path, stage: &Path) -> Result<()> {
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/guardian"),
        ("zsh", "usr/share/zsh/vendor-completions/_guardian"),
        ("fish", "usr/share/fish/vendor_completions.d/guardian.fish"),
    ] {
        let text = cmd::stdout(&mut cmd::new(bin, ["completions", shell]))?;
        write(&stage.join(path), &text, 0o644)?;
    }
    let man = stage.join("usr/share/man/man1/guardian.1");
    write(&man, &cmd::stdout(&mut cmd::new(bin, ["manpage"]))?, 0o644)?;
    // -n: no name or time stamp in the header, so the same page compresses to the same bytes.
    cmd::run(cmd::new("gzip", ["-9nf"]).arg(&man))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

/// The shared objects `ldd` resolves for `bin` (absolute paths; the vDSO has none).
pub fn shared_objects(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = cmd::stdout(cmd::new("ldd", [bin]).env("LC_ALL", "C"))?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if libs.is_empty() {
        bail!("ldd found no shared objects for {}", bin.display());
    }
    Ok(libs)
}

/// buildah with its storage under `target/package/containers` (not the host's).
pub fn buildah(out: &Path) -> std::process::Command {
    let mut c = cmd::new("buildah", ["--root"]);
    c.arg(out.join("containers/storage"))
        .arg("--runroot")
        .arg(out.join("containers/run"))
        .arg("--storage-driver")
        .arg("vfs");
    c
}

pub fn build_oci(bin: &Path, out: &Path) -> Result<PathBuf> {
    let root = cmd::repo_root()?;
    let image = format!("{IMAGE}:{VERSION}");
    let ctr = cmd::stdout(buildah(out).args(["from", "scratch"]))?
        .trim()
        .to_owned();
    let result = (|| -> Result<PathBuf> {
        let add = |src: &Path, dst: &str| -> Result<()> {
            cmd::run(
                buildah(out)
                    .args(["copy", "--chmod", "0755", &ctr])
                    .arg(src)
                    .arg(dst),
            )
        };
        add(bin, "/usr/sbin/guardian")?;
        for lib in shared_objects(bin)? {
            let real = std::fs::canonicalize(&lib)?;
            add(&real, lib.to_str().context("a non-UTF-8 library path")?)?;
        }
        cmd::run(
            buildah(out)
                .args(["copy", "--chmod", "0644", &ctr])
                .arg(root.join("docs/deploy/guardian.toml"))
                .arg("/etc/guardian/guardian.toml"),
        )?;
        cmd::run(buildah(out).args([
            "config",
            "--entrypoint",
            r#"["/usr/sbin/guardian"]"#,
            "--cmd",
            "run",
            "--label",
            &format!("org.opencontainers.image.version={VERSION}"),
            "--label",
            "org.opencontainers.image.title=guardian",
            &ctr,
        ]))?;
        cmd::run(buildah(out).args(["commit", "--rm", &ctr, &image]))?;
        let archive = out.join(format!("guardian-{VERSION}.oci.tar"));
        let _ = std::fs::remove_file(&archive);
        cmd::run(buildah(out).args([
            "push",
            &image,
            &format!("oci-archive:{}:{image}", archive.display()),
        ]))?;
        Ok(archive)
    })();
    if result.is_err() {
        let _ = cmd::run(buildah(out).args(["rm", &ctr]));
    }
    result
}
