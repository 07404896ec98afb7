//! One QEMU (TCG) boot of a Debian kernel with the host's filesystem as its root.
//!
//! Hand-made rather than virtme-ng: vng exits 255 here whatever the guest did, and a Debian
//! kernel unpacked from its package needs its own modules anyway. The pieces are small: an
//! initramfs of busybox-static and the 9p modules (from the kernel's own package) that mounts
//! the host's `/` read-only over virtio-9p and switches to it; a second script, on the host's
//! filesystem, mounts tmpfs over the writable places, bpffs, tracefs and cgroup2, runs the
//! commands and writes their output and exit codes to a shared directory (the only writable
//! share). `-accel tcg,thread=single`: multi-threaded TCG crashed guests here while tracepoints
//! were attached and detached.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::apt::Kernel;
use crate::cmd;

/// The modules the initramfs loads, with their dependencies (resolved by `modprobe -d`).
const INIT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// Kills QEMU (by its own pid, through the `Child`) when dropped, so that no VM outlives
/// the runner, whatever path it leaves by.
struct QemuGuard(Child);

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What one boot produced.
pub struct Boot {
    /// Seconds from QEMU's start to the guest's second stage (the host's filesystem mounted).
    pub boot_secs: Option<f64>,
    pub total: Duration,
    pub out: PathBuf,
}

/// Writes the initramfs for `kernel` to `path` (uncompressed newc cpio).
pub fn initramfs(kernel: &Kernel, work: &Path, path: &Path, stage2: &Path) -> Result<()> {
    let root = work.join("initramfs");
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "mods", "newroot", "proc", "sys", "dev"] {
        fs::create_dir_all(root.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing (setup installs busybox-static)");
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    let mut seen = Vec::new();
    for m in INIT_MODULES {
        let mut c = cmd::new("modprobe", ["-d".as_ref(), kernel.dir.as_os_str()]);
        c.args(["-S", &kernel.release, "--show-depends", m]);
        let out = cmd::stdout(&mut c).context("modprobe --show-depends (setup installs kmod)")?;
        for line in out.lines() {
            if let Some(p) = line.strip_prefix("insmod ") {
                let p = PathBuf::from(p.trim());
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
        }
    }
    for (i, m) in seen.iter().enumerate() {
        let name = m.file_name().unwrap_or_default().to_string_lossy();
        let base = name.split(".ko").next().unwrap_or(&name);
        let dest = root.join(format!("mods/{i:02}-{base}.ko"));
        // busybox insmod does not decompress: the host's xz/zstd do it here.
        let data = if name.ends_with(".xz") {
            decompress("xz", m)?
        } else if name.ends_with(".zst") {
            decompress("zstd", m)?
        } else {
            fs::read(m)?
        };
        fs::write(dest, data)?;
    }
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         for m in /mods/*.ko; do insmod $m || echo \"guardian-vm: insmod $m failed\"; done\n\
         mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /newroot \
         || {{ echo 'guardian-vm: cannot mount the host root'; poweroff -f; }}\n\
         umount /proc /sys /dev\n\
         exec switch_root /newroot /bin/sh {}\n",
        stage2.display()
    );
    fs::write(root.join("init"), init)?;
    set_exec(&root.join("init"))?;
    let sh = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet -R 0:0 > '{}'",
        root.display(),
        path.display()
    );
    cmd::run(&mut cmd::new("sh", ["-c", &sh])).context("cpio failed (setup installs cpio)")
}

/// `xz -dc FILE` or `zstd -dc FILE`: the decompressed bytes.
fn decompress(tool: &str, file: &Path) -> Result<Vec<u8>> {
    let out = Command::new(tool)
        .arg("-dc")
        .arg(file)
        .output()
        .with_context(|| format!("could not run {tool} (setup installs it)"))?;
    if !out.status.success() {
        bail!("{tool} -dc {} failed", file.display());
    }
    Ok(out.stdout)
}

fn set_exec(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Single-quotes `s` for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's second stage: mounts, then `steps` (name, shell command) each with its output
/// in `out/<name>.txt` and its exit code in `out/<name>.rc`; then power off.
pub fn stage2(out: &Path, env: &[(String, String)], steps: &[(&str, String)]) -> String {
    let o = quote(&out.display().to_string());
    let mut s = String::from("#!/bin/sh\n# guardian kernel matrix: guest stage 2 (generated)\n");
    s.push_str(
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm\n\
         for d in /tmp /run /var/tmp /var/log /var/lib /var/cache /root /etc/netns /mnt; do\n\
         \x20 [ -d $d ] && mount -t tmpfs tmpfs $d; done\n\
         mkdir -p /run/netns /run/lock\n\
         mount -t bpf bpf /sys/fs/bpf; mount -t tracefs tracefs /sys/kernel/tracing\n\
         mount -t debugfs debugfs /sys/kernel/debug; mount -t cgroup2 cgroup2 /sys/fs/cgroup\n",
    );
    // The host may have no /lib/modules to mount over, and its root is read-only here: the
    // kernel's module loader and the tests' `modprobe` go through a wrapper that points kmod
    // at the unpacked package (`modprobe -d`).
    let bin = out.join("bin");
    let _ = writeln!(
        s,
        "echo {} > /proc/sys/kernel/modprobe",
        quote(&bin.join("modprobe").display().to_string())
    );
    let _ = writeln!(
        s,
        "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out {o}"
    );
    let _ = writeln!(s, "cut -d' ' -f1 /proc/uptime > {o}/boot.secs");
    s.push_str("ip link set lo up; hostname guardian-vm\n");
    let _ = writeln!(
        s,
        "export PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root",
        quote(&bin.display().to_string())
    );
    for (k, v) in env {
        let _ = writeln!(s, "export {k}={}", quote(v));
    }
    for (name, command) in steps {
        let _ = writeln!(
            s,
            "echo \"guardian-vm: {name}\" > /dev/ttyS0\n\
             ( {command} ) > {o}/{name}.txt 2>&1 < /dev/null; echo $? > {o}/{name}.rc"
        );
    }
    let _ = writeln!(s, "cut -d' ' -f1 /proc/uptime > {o}/end.secs");
    s.push_str("sync; echo o > /proc/sysrq-trigger; sleep 30\n");
    s
}

/// Writes `out/bin/modprobe`: kmod's modprobe with the unpacked package as its root.
pub fn modprobe_wrapper(kernel: &Kernel, out: &Path) -> Result<()> {
    let bin = out.join("bin");
    fs::create_dir_all(&bin)?;
    let script = format!(
        "#!/bin/sh\nexec /sbin/modprobe -d {} \"$@\"\n",
        quote(&kernel.dir.display().to_string())
    );
    fs::write(bin.join("modprobe"), script)?;
    set_exec(&bin.join("modprobe"))
}

/// Boots `kernel` with `initrd`, waits up to `timeout` for it to power off.
pub fn boot(
    qemu: &Path,
    kernel: &Kernel,
    initrd: &Path,
    out: &Path,
    timeout: Duration,
) -> Result<Boot> {
    let console = out.join("console.log");
    let share = |tag: &str, path: &Path, ro: bool| {
        format!(
            "local,path={},mount_tag={tag},security_model=passthrough,multidevs=remap{}",
            path.display(),
            if ro { ",readonly=on" } else { "" }
        )
    };
    let mut c = Command::new(qemu.join("usr/bin/qemu-system-x86_64"));
    c.arg("-L").arg(qemu.join("usr/share/qemu"));
    c.arg("-L").arg(qemu.join("usr/share/seabios"));
    c.args([
        "-accel",
        "tcg,thread=single",
        "-m",
        "2G",
        "-smp",
        "2",
        "-cpu",
        "max",
    ]);
    c.args(["-nodefaults", "-no-reboot", "-display", "none"]);
    c.arg("-serial").arg(format!("file:{}", console.display()));
    c.arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd);
    c.args([
        "-append",
        "console=ttyS0 rdinit=/init panic=-1 edd=off mitigations=off nokaslr loglevel=4",
    ]);
    c.arg("-virtfs")
        .arg(share("hostroot", Path::new("/"), true));
    c.arg("-virtfs").arg(share("out", out, false));
    c.stdin(Stdio::null()).stdout(Stdio::null());
    eprintln!("==> boot {}: {}", kernel.release, cmd::display(&c));
    let start = Instant::now();
    let mut guard = QemuGuard(c.spawn().context("could not start QEMU")?);
    loop {
        if let Some(st) = guard.0.try_wait()? {
            if !st.success() {
                bail!(
                    "QEMU exited with {st}; the console is in {}",
                    console.display()
                );
            }
            break;
        }
        if start.elapsed() > timeout {
            drop(guard);
            bail!(
                "the VM did not power off within {}; the console is in {}",
                cmd::secs(timeout),
                console.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let boot_secs = fs::read_to_string(out.join("boot.secs"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Ok(Boot {
        boot_secs,
        total: start.elapsed(),
        out: out.to_path_buf(),
    })
}
