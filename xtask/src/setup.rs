//! Installing prerequisites, each step only if it is missing.
//!
//! - Debian packages: LLVM 22 development files (bpf-linker links against them), gcc and make
//!   (jemalloc, sockpath's allocator, is built from C), and the tools
//!   the tests and the benchmark drive (iproute2, tcpdump, tshark, iperf3, netcat, bpftool,
//!   prometheus).
//! - rustup's nightly toolchain with rust-src (eBPF programs are built with -Z build-std=core)
//!   and clippy (the eBPF programs are checked with it).
//! - bpf-linker 0.13 built against LLVM 22 (a plain `cargo install bpf-linker` fails here).

use std::process::Command;

use anyhow::anyhow;

use crate::cmd::{self, output, run, which};

/// Debian packages and what needs them.
pub const PACKAGES: &[(&str, &str)] = &[
    ("llvm-22-dev", "bpf-linker build"),
    ("libclang-22-dev", "bpf-linker build"),
    ("gcc", "jemalloc build (sockpath's allocator)"),
    ("make", "jemalloc build (sockpath's allocator)"),
    ("iproute2", "tests: network namespaces and veth pairs"),
    ("netcat-openbsd", "tests and README examples"),
    ("tcpdump", "tests and benchmark: captures to compare with"),
    ("tshark", "tests: reading pcapng files and their comments"),
    ("iperf3", "benchmark load"),
    (
        "bpftool",
        "tests: checking no program stays attached; benchmark: the maps' memory",
    ),
    (
        "bpftrace",
        "benchmark: one-liners on sockpath's per-packet hooks, a peer to compare with",
    ),
    (
        "prometheus",
        "tests: a real Prometheus server scrapes the daemon's metrics",
    ),
];

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

fn packages() -> anyhow::Result<()> {
    cmd::apt_install(
        PACKAGES,
        "xtask",
        ": on Ubuntu and older Debian, LLVM 22 comes from apt.llvm.org",
    )
}

fn nightly() -> anyhow::Result<()> {
    if which("rustup").is_none() {
        return Err(anyhow!(
            "rustup is needed (the eBPF crate builds with a nightly toolchain): see https://rustup.rs"
        ));
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
            "--component",
            "clippy",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .unwrap_or_default();
    // rust-src for build-std; clippy to check the eBPF programs (`cargo xtask test`).
    for component in ["rust-src", "clippy"] {
        if !components.lines().any(|l| l.starts_with(component)) {
            run(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "nightly",
            ]))?;
        }
    }
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    run(Command::new("cargo")
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ])
        .args(["--no-default-features", "--features", "llvm-22"]))
}

/// Everything, in order.
pub fn all() -> anyhow::Result<()> {
    packages()?;
    nightly()?;
    bpf_linker()?;
    // Cargo's bin directory must be on PATH for build.rs to find bpf-linker.
    if which("bpf-linker").is_none() {
        let home = std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
        let path = std::env::var("PATH").unwrap_or_default();
        // SAFETY: single-threaded at this point; children inherit it.
        unsafe { std::env::set_var("PATH", format!("{home}/bin:{path}")) };
    }
    let _ = cmd::root();
    Ok(())
}
