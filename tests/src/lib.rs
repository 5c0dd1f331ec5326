//! Harness for sockpath's integration tests: run the real `sockpath watch --json` as root,
//! make real traffic in network namespaces the test creates, capture it with tcpdump as an
//! independent witness, and read back what sockpath reported.

mod capture;
mod connect;
mod daemon;
mod hooks;
mod netns;
mod peer;
mod programs;
mod watch;

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

pub use capture::{ports, Capture};
pub use connect::connect_from;
pub use daemon::{Daemon, User, NOBODY, TEST_GID};
pub use hooks::{drop_reason, expect_hooks, kernel_at_least, stage_hook};
pub use netns::{Netns, VethPair};
pub use peer::Peer;
pub use programs::{loaded_programs, sockpath_programs_loaded, SOCKPATH_PROGRAMS};
pub use watch::{Report, Watch};

/// The sockpath binary under test: $SOCKPATH_BIN, or the workspace's debug build.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SOCKPATH_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["debug", "release"] {
        let p = root.join("target").join(profile).join("sockpath");
        if p.is_file() {
            return p;
        }
    }
    panic!("sockpath is not built: run `cargo build -p sockpath` or set SOCKPATH_BIN");
}

/// These tests load eBPF programs and create network namespaces: they need root, and fail
/// (rather than skip) without it so a CI run without root cannot pass by doing nothing.
pub fn require_root() {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests must run as root (cargo xtask test does)"
    );
}

/// Runs `cmd`, asserts it succeeded, returns its stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) -> String {
    sh(Command::new("ip").args(args))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique small number for names and ports in this test process.
pub fn unique() -> u32 {
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// A port nobody on this machine uses now (the kernel picks it), free for
/// both TCP and UDP, and never handed out twice in one test process: two
/// draws from the kernel's ephemeral range can repeat, and a test that
/// watches twenty ports must get twenty different ones.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let p = l.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&p) {
            given.push(p);
            return p;
        }
    }
}
