//! The host packages `cargo xtask vm` needs, installed only when missing.

use crate::cmd::apt_install;

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

/// Installs whichever of [`VM_PACKAGES`] are missing; does nothing when all are present.
pub fn vm_packages() -> anyhow::Result<()> {
    apt_install(VM_PACKAGES, "xtask vm", "")
}
