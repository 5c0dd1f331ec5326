//! The host packages `cargo xtask vm` needs, installed only when missing (the same approach as
//! `setup.rs`, kept here so the VM runner does not reach into that file).

use std::process::Command;

use anyhow::{anyhow, Context as _};

use crate::cmd::{as_root, output, run, which};

/// Debian packages and what needs them.
pub const VM_PACKAGES: &[(&str, &str)] = &[
    (
        "qemu-system-x86",
        "booting the Debian kernels (TCG: KVM guests fail on this kind of machine)",
    ),
    (
        "busybox-static",
        "the guest's shell, mount, insmod and poweroff",
    ),
    ("cpio", "packing the initramfs"),
    (
        "kmod",
        "depmod: the kernel packages ship no modules.dep (dpkg's postinst makes it)",
    ),
    (
        "xz-utils",
        "6.12's modules are .ko.xz; they are unpacked on the host",
    ),
    (
        "binutils",
        "strip: debug builds are ~70 MB, and the guest unpacks the initramfs under TCG",
    ),
    ("iproute2", "ip in the guest (ip netns, veth)"),
    (
        "tcpdump",
        "tcpdump in the guest: the tests' independent witness",
    ),
    (
        "bpftool",
        "bpftool in the guest: the tests check no program stays loaded",
    ),
    (
        "procps",
        "sysctl in the guest, if busybox has no sysctl applet",
    ),
];

pub fn installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs whichever of [`VM_PACKAGES`] are missing; does nothing when all are present.
pub fn vm_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = VM_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which("apt-get").is_none() {
        return Err(anyhow!(
            "the VM runner needs these Debian packages and there is no apt-get to install them: {}",
            missing.join(" ")
        ));
    }
    eprintln!(
        "xtask vm: installing Debian packages: {}",
        missing.join(" ")
    );
    let install = |update: bool| -> anyhow::Result<()> {
        if update {
            run(as_root("apt-get").args(["update", "-q"]))?;
        }
        run(as_root("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))
    };
    // A fresh machine may have no package lists yet.
    install(false)
        .or_else(|_| install(true))
        .with_context(|| format!("installing {}", missing.join(" ")))
}
