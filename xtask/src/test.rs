//! The test command: formatting, clippy, unit tests, the integration tests against this
//! machine's kernel (as root), then the same integration tests inside Debian's stock kernels
//! under qemu (the default matrix in vm/debian.rs).

use std::process::Command;

use crate::cmd::{as_root, build_sockpath, cargo, root, run};

pub fn run_sockpath(args: &[String]) -> anyhow::Result<()> {
    let bin = build_sockpath()?;
    run(as_root(&bin.to_string_lossy()).args(args))
}

/// Nightly's cargo (the eBPF target needs build-std), without what the cargo running xtask
/// set for its own toolchain.
fn nightly_cargo() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO")
        .current_dir(root());
    c
}

pub fn all() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF programs themselves (the `ebpf` feature, BPF target), which the workspace's
    // clippy does not build; a target folder of their own keeps the host build's cache.
    run(nightly_cargo().args([
        "clippy",
        "-p",
        "sockpath-ebpf",
        "--features",
        "ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--bin",
        "sockpath-ebpf",
        "--target-dir",
        "target/ebpf-clippy",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace", "--exclude", "sockpath-tests"]))?;
    let bin = build_sockpath()?;
    // Integration tests load eBPF programs and create network namespaces: root only. They run
    // one at a time so each sockpath sees only its own test's traffic and timing is steady.
    run(cargo().args(["test", "-p", "sockpath-tests", "--no-run"]))?;
    let mut c = cargo();
    if !crate::cmd::is_root() {
        c = as_root("cargo");
        c.current_dir(root());
    }
    run(c.env("SOCKPATH_BIN", &bin).args([
        "test",
        "-p",
        "sockpath-tests",
        "--",
        "--test-threads=1",
    ]))?;
    // The same test executables inside Debian's stock kernels, where fentry/fexit and kprobes
    // serve the stages this kernel can only infer.
    crate::vm::run(crate::vm::VmArgs::default())
}
