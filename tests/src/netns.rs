//! Network namespaces and veth pairs made for one test, deleted at its end.

use std::{os::fd::AsRawFd, process::Command, thread};

use crate::{ip, sh, unique};

/// A network namespace made for one test, deleted at the end. Its loopback is up and IPv6 is
/// on only where asked, so the only packets in it are the test's.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("sp-{tag}-{}-{}", std::process::id(), unique());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> String {
        sh(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that entered this namespace: sockets it creates live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("thread in netns panicked")
    }

    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: a valid network namespace fd; setns affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `a` holds `a_if` with 10.X.0.1/24, `b` holds `b_if`
/// with 10.X.0.2/24. IPv6 is off and the neighbours are static, so no ARP or router
/// solicitations: every TCP or UDP packet on the pair is the test's. (`new_v6`: the same over
/// IPv6 only.)
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub a_if: String,
    pub b_if: String,
    pub a_addr: String,
    pub b_addr: String,
}

impl VethPair {
    pub fn new() -> Self {
        Self::with(false)
    }

    /// The same pair over IPv6 only: fd00:X::1/64 and fd00:X::2/64, without duplicate address
    /// detection or router solicitations, neighbours static.
    pub fn new_v6() -> Self {
        Self::with(true)
    }

    fn with(v6: bool) -> Self {
        let a = Netns::new("a");
        let b = Netns::new("b");
        let n = unique() % 200 + 20;
        let (a_if, b_if) = (format!("spa{n}"), format!("spb{n}"));
        let (a_addr, b_addr, plen) = if v6 {
            (format!("fd00:{n}::1"), format!("fd00:{n}::2"), 64)
        } else {
            (format!("10.{n}.0.1"), format!("10.{n}.0.2"), 24)
        };
        for ns in [&a, &b] {
            if v6 {
                for conf in ["all", "default"] {
                    ns.exec(&[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{conf}.accept_dad=0"),
                    ]);
                    ns.exec(&[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{conf}.router_solicitations=0"),
                    ]);
                }
            } else {
                ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
                ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
            }
        }
        ip(&[
            "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
            &b.name,
        ]);
        let mac = |ns: &Netns, dev: &str| -> String {
            let out = ns.exec(&["cat", &format!("/sys/class/net/{dev}/address")]);
            out.trim().to_string()
        };
        let (a_mac, b_mac) = (mac(&a, &a_if), mac(&b, &b_if));
        let nodad: &[&str] = if v6 { &["nodad"] } else { &[] };
        let a_net = format!("{a_addr}/{plen}");
        let b_net = format!("{b_addr}/{plen}");
        a.exec(&[&["ip", "addr", "add", &a_net, "dev", &a_if][..], nodad].concat());
        b.exec(&[&["ip", "addr", "add", &b_net, "dev", &b_if][..], nodad].concat());
        a.exec(&[
            "ip",
            "neigh",
            "add",
            &b_addr,
            "lladdr",
            &b_mac,
            "dev",
            &a_if,
            "nud",
            "permanent",
        ]);
        b.exec(&[
            "ip",
            "neigh",
            "add",
            &a_addr,
            "lladdr",
            &a_mac,
            "dev",
            &b_if,
            "nud",
            "permanent",
        ]);
        a.exec(&["ip", "link", "set", &a_if, "up"]);
        b.exec(&["ip", "link", "set", &b_if, "up"]);
        VethPair {
            a,
            b,
            a_if,
            b_if,
            a_addr,
            b_addr,
        }
    }
}

impl Default for VethPair {
    fn default() -> Self {
        Self::new()
    }
}
