//! The guest's root file system: an initramfs (cpio newc, gzip) built per kernel from busybox,
//! the host's own tools and the shared libraries they load, sockpath and its test executables,
//! the kernel modules the tests need, and /init.
//!
//! The host's binaries run unchanged in the guest: the guest kernels are older than the host's,
//! but glibc and the tools only need the system calls any 6.x kernel has.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{symlink, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{anyhow, bail, Context as _};

use super::{
    commands::{GuestCommand, GuestFile},
    debian::Kernel,
    init_script::{self, GUEST_MODULES_DIR},
    modules,
};
use crate::cmd::{output, run, which};

/// Real tools the tests run (busybox applets of the same name are left out so these win):
/// the harness's `ip netns`/veth set-up, tcpdump as the independent witness, bpftool to check
/// no program stays loaded, `cat` for sysfs reads inside `ip netns exec`, util-linux's
/// `setpriv` to run sockpath without root (busybox's setpriv has no --reuid).
pub const GUEST_TOOLS: &[&str] = &["ip", "tcpdump", "bpftool", "cat", "setpriv"];
/// Used from the host only when busybox has no applet of that name.
pub const GUEST_TOOLS_IF_NO_APPLET: &[&str] = &["sysctl"];
/// Kernel modules the tests need (their dependencies are added from modules.dep):
/// veth for the harness's `VethPair`.
pub const GUEST_MODULES: &[&str] = &["veth"];

/// /etc files. tcpdump drops its privileges to the user `tcpdump` after opening the capture
/// (Debian builds it that way) and stops if that user does not exist.
const ETC: &[(&str, &str)] = &[
    (
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\ntcpdump:x:100:100::/nonexistent:/bin/false\n\
         nobody:x:65534:65534::/nonexistent:/bin/false\n",
    ),
    ("group", "root:x:0:\ntcpdump:x:100:\nnogroup:x:65534:\n"),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\n",
    ),
    ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
];

/// Builds `out_dir/initramfs.cpio.gz` (from a fresh `out_dir/initramfs/`) and returns its path.
pub fn build(
    kernel: &Kernel,
    files: &[GuestFile],
    commands: &[GuestCommand],
    out_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let stage = out_dir.join("initramfs");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    skeleton(&stage)?;

    let mut dynamic: Vec<PathBuf> = Vec::new();
    let applets = busybox(&stage)?;
    let mut tools: Vec<&str> = GUEST_TOOLS.to_vec();
    tools.extend(
        GUEST_TOOLS_IF_NO_APPLET
            .iter()
            .filter(|t| !applets.contains(**t)),
    );
    for t in &tools {
        let host = which(t)
            .or_else(|| {
                ["/usr/sbin", "/sbin"]
                    .map(|d| Path::new(d).join(t))
                    .into_iter()
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| {
                anyhow!("{t} is not installed on the host (the guest uses the host's)")
            })?;
        let host = fs::canonicalize(&host)?;
        copy(&host, &stage, &host.to_string_lossy())?;
        dynamic.push(host);
    }
    // Applet links for everything busybox does that no real tool here does.
    for a in &applets {
        let link = stage.join("usr/bin").join(a);
        if tools.contains(&a.as_str()) || link.symlink_metadata().is_ok() {
            continue;
        }
        symlink("busybox", &link)?;
    }
    for f in files {
        let dst = copy(&f.host, &stage, &f.guest)?;
        strip(&dst);
        dynamic.push(f.host.clone());
    }
    for lib in shared_libraries(&dynamic)? {
        copy(&lib, &stage, &lib.to_string_lossy())?;
    }

    let order = modules::load_order(&kernel.modules_dir, GUEST_MODULES)?;
    let mod_dir = stage.join(GUEST_MODULES_DIR.trim_start_matches('/'));
    fs::create_dir_all(&mod_dir)?;
    let mut names = Vec::new();
    for m in &order {
        modules::unpack(&m.path, &mod_dir.join(format!("{}.ko", m.name)))?;
        names.push(m.name.clone());
    }

    let init = stage.join("init");
    fs::write(&init, init_script::render(&names, commands))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;

    let out = out_dir.join("initramfs.cpio.gz");
    pack(&stage, &out)?;
    Ok(out)
}

/// Folders, the merged-/usr links Debian has (so host paths like /lib64/ld-linux-x86-64.so.2
/// and /usr/lib64/... both resolve), /var/run -> /run, /etc, /dev/console.
fn skeleton(stage: &Path) -> anyhow::Result<()> {
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "usr/local/bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "etc",
        "var",
        "opt",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("var/run", "../run"),
    ] {
        symlink(target, stage.join(link))?;
    }
    fs::set_permissions(stage.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    for (name, text) in ETC {
        fs::write(stage.join("etc").join(name), text)?;
    }
    // The kernel opens /dev/console for init's stdio before /init can mount devtmpfs. Its
    // built-in initramfs usually has the node already; making it here does not depend on that.
    let console = stage.join("dev/console");
    let c = std::ffi::CString::new(console.to_string_lossy().as_bytes())?;
    // SAFETY: a valid C string; mknod only creates the node (it needs root, as xtask vm runs).
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(5, 1)) };
    if rc != 0 {
        eprintln!(
            "xtask vm: could not make dev/console in the initramfs ({}); relying on the kernel's",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Copies Debian's static busybox into the stage; returns its applet names.
fn busybox(stage: &Path) -> anyhow::Result<BTreeSet<String>> {
    let listed = output(Command::new("dpkg").args(["-L", "busybox-static"])).unwrap_or_default();
    let host = listed
        .lines()
        .map(Path::new)
        .find(|p| p.ends_with("bin/busybox") && p.is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("busybox-static is not installed (no bin/busybox in dpkg -L)"))?;
    copy(&host, stage, "/usr/bin/busybox")?;
    let list = output(Command::new(&host).arg("--list"))
        .ok_or_else(|| anyhow!("{} --list failed", host.display()))?;
    Ok(list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(str::to_string)
        .collect())
}

/// Copies `host` (following links) to `guest` inside the stage; returns the staged path.
fn copy(host: &Path, stage: &Path, guest: &str) -> anyhow::Result<PathBuf> {
    let dst = stage.join(guest.trim_start_matches('/'));
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(host, &dst)
        .with_context(|| format!("copying {} to {}", host.display(), dst.display()))?;
    Ok(dst)
}

/// Debug builds carry ~60 MB of DWARF per executable; the guest unpacks the initramfs under
/// TCG, so the copies lose it (symbols stay, for panic messages and backtraces).
fn strip(path: &Path) {
    if let Err(e) = run(Command::new("strip").arg("--strip-debug").arg(path)) {
        eprintln!("xtask vm: keeping {} unstripped: {e:#}", path.display());
    }
}

/// Every shared library (and the dynamic loader) `ldd` lists for these executables.
fn shared_libraries(executables: &[PathBuf]) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for exe in executables {
        let out = Command::new("ldd").arg(exe).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            // ldd fails on static executables ("not a dynamic executable"): nothing to add.
            continue;
        }
        for l in text.lines() {
            if l.contains("not found") {
                bail!("ldd {}: {}", exe.display(), l.trim());
            }
            libs.extend(ldd_path(l));
        }
    }
    Ok(libs)
}

/// The library path in one line of ldd's output, if it has one (linux-vdso has none).
pub fn ldd_path(line: &str) -> Option<PathBuf> {
    let l = line.trim();
    let path = match l.split_once("=>") {
        Some((_, right)) => right.trim(),
        None => l,
    };
    let path = path.split(" (").next()?.trim();
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// `find | cpio -o -H newc | gzip` without a shell, checking each stage's status.
fn pack(stage: &Path, out: &Path) -> anyhow::Result<()> {
    eprintln!(
        "+ (cd {} && find . | cpio -o -H newc -R 0:0 | gzip) > {}",
        stage.display(),
        out.display()
    );
    let mut find = Command::new("find")
        .args([".", "-print0"])
        .current_dir(stage)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting find")?;
    let mut cpio = Command::new("cpio")
        .args([
            "--null",
            "--create",
            "--format=newc",
            "--owner=0:0",
            "--quiet",
        ])
        .current_dir(stage)
        .stdin(
            find.stdout
                .take()
                .ok_or_else(|| anyhow!("find has no stdout"))?,
        )
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cpio (package cpio)")?;
    let mut gzip = Command::new("gzip")
        .arg("-6")
        .stdin(
            cpio.stdout
                .take()
                .ok_or_else(|| anyhow!("cpio has no stdout"))?,
        )
        .stdout(fs::File::create(out)?)
        .spawn()
        .context("starting gzip")?;
    for (what, child) in [
        ("find", &mut find),
        ("cpio", &mut cpio),
        ("gzip", &mut gzip),
    ] {
        let st = child.wait()?;
        if !st.success() {
            bail!("{what} failed ({st}) while packing {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        assert_eq!(ldd_path("\tlinux-vdso.so.1 (0x00007fc8fcf16000)"), None);
        assert_eq!(
            ldd_path("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fc8fcb8a000)"),
            Some(PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(
            ldd_path("\t/lib64/ld-linux-x86-64.so.2 (0x00007fc8fcf18000)"),
            Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2"))
        );
    }
}
