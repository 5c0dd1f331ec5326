//! Harness for sockpath's integration tests: run the real `sockpath watch --json` as root,
//! make real traffic in network namespaces the test creates, capture it with tcpdump as an
//! independent witness, and read back what sockpath reported.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

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
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
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

/// A port nobody on this machine uses now (the kernel picks it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    // A TCP port the kernel chose, checked free for UDP too (tests watch both).
    let p = l.local_addr().unwrap().port();
    drop(u);
    p
}

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
/// solicitations: every packet on the pair is the test's.
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
        let a = Netns::new("a");
        let b = Netns::new("b");
        let n = unique() % 200 + 20;
        let (a_if, b_if) = (format!("spa{n}"), format!("spb{n}"));
        let (a_addr, b_addr) = (format!("10.{n}.0.1"), format!("10.{n}.0.2"));
        for ns in [&a, &b] {
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
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
        a.exec(&["ip", "addr", "add", &format!("{a_addr}/24"), "dev", &a_if]);
        b.exec(&["ip", "addr", "add", &format!("{b_addr}/24"), "dev", &b_if]);
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

/// tcpdump in a namespace: the independent count of packets on the wire.
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    pub fn start(ns: &Netns, iface: &str, filter: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sockpath-test-{}-{}.pcap",
            std::process::id(),
            unique()
        ));
        let mut child = ns
            .command("tcpdump")
            .args(["-i", iface, "-n", "-U", "-w"])
            .arg(&path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        // tcpdump says "listening on" once its filter is attached.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => continue,
                _ => panic!("tcpdump did not start"),
            }
        }
        thread::spawn(move || for _ in lines {});
        Capture { child, path }
    }

    /// Stops the capture; returns one line per packet as `tcpdump -r -n -tt` prints it.
    pub fn stop(mut self) -> Vec<String> {
        thread::sleep(Duration::from_millis(200));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let out = sh(Command::new("tcpdump")
            .args(["-r"])
            .arg(&self.path)
            .args(["-n", "-tt"]));
        let _ = std::fs::remove_file(&self.path);
        out.lines().map(str::to_string).collect()
    }
}

/// What one sockpath run reported.
#[derive(Debug, Default)]
pub struct Report {
    pub start: Value,
    pub journeys: Vec<Value>,
    pub syscalls: Vec<Value>,
    pub notes: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
    pub exit_code: Option<i32>,
}

impl Report {
    pub fn journeys_to_port(&self, port: u16) -> Vec<&Value> {
        self.journeys
            .iter()
            .filter(|j| j["dport"] == port)
            .collect()
    }

    pub fn syscalls_named(&self, name: &str) -> Vec<&Value> {
        self.syscalls
            .iter()
            .filter(|s| s["syscall"] == name)
            .collect()
    }

    /// Journeys whose TCP flags are exactly these.
    pub fn with_flags<'a>(&'a self, flags: &[&str]) -> Vec<&'a Value> {
        self.journeys
            .iter()
            .filter(|j| {
                j["flags"].as_array().is_some_and(|f| {
                    f.iter()
                        .map(|v| v.as_str().unwrap_or(""))
                        .eq(flags.iter().copied())
                })
            })
            .collect()
    }

    /// Text of everything, for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for j in &self.journeys {
            s.push_str(&format!(
                "journey {} {}:{} -> {}:{} {:?} => {} ({})\n",
                j["id"],
                j["src"],
                j["sport"],
                j["dst"],
                j["dport"],
                j["flags"],
                j["outcome"]["text"],
                j["complete"]
            ));
            for st in j["stages"].as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "    {} {} {}\n",
                    st["name"], st["hook"], st["detail"]
                ));
            }
        }
        for c in &self.syscalls {
            s.push_str(&format!("syscall {} {}\n", c["comm"], c["text"]));
        }
        s.push_str(&format!(
            "summary {}\nstderr {}\n",
            self.summary, self.stderr
        ));
        s
    }
}

/// A running `sockpath watch --json`.
pub struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    pub start: Value,
}

impl Watch {
    /// Starts sockpath with `args` after `watch --json` and waits until every probe is attached.
    pub fn start(args: &[&str]) -> Self {
        require_root();
        let mut child = Command::new(bin())
            .arg("watch")
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockpath");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let e2 = stderr.clone();
        thread::spawn(move || {
            for l in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                e2.lock().unwrap().push_str(&l);
                e2.lock().unwrap().push('\n');
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| {
                    panic!("sockpath printed a line that is not JSON ({e}): {l}")
                });
                if v["type"] == "start" {
                    let _ = tx.send(v.clone());
                }
                l2.lock().unwrap().push(v);
            }
        });
        let start = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                panic!("sockpath did not start: {}", stderr.lock().unwrap());
            }
        };
        Watch {
            child,
            lines,
            stderr,
            reader: Some(reader),
            start,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Stops sockpath with `sig` (SIGINT like Ctrl-C, or SIGTERM) and collects its report.
    pub fn stop_with(mut self, sig: i32) -> Report {
        // Let the last journeys settle (sockpath waits for reads and accepts).
        thread::sleep(Duration::from_millis(300));
        self.signal(sig);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait sockpath") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "sockpath did not exit after signal {sig}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
        thread::sleep(Duration::from_millis(50));
        let mut report = Report {
            start: self.start.clone(),
            stderr: self.stderr.lock().unwrap().clone(),
            exit_code: status.code(),
            ..Report::default()
        };
        for v in self.lines.lock().unwrap().drain(..) {
            match v["type"].as_str() {
                Some("journey") => report.journeys.push(v),
                Some("syscall") => report.syscalls.push(v),
                Some("note") => report.notes.push(v),
                Some("summary") => report.summary = v,
                _ => {}
            }
        }
        report
    }

    pub fn stop(self) -> Report {
        self.stop_with(libc::SIGINT)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP connection from a chosen local address and port (like `nc -p`): socket,
/// SO_REUSEADDR, bind, connect.
pub fn connect_from(local: SocketAddr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    fn raw(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: zeroed sockaddr_storage is valid; filled below for the family used.
        let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match a {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in.
                unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in6.
                unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (st, len as libc::socklen_t)
    }
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on an fd owned here, with valid pointers and lengths.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let (l, ll) = raw(&local);
        if libc::bind(fd, (&l as *const libc::sockaddr_storage).cast(), ll) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (r, rl) = raw(&remote);
        if libc::connect(fd, (&r as *const libc::sockaddr_storage).cast(), rl) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Names of the BPF programs loaded on the machine now (bpftool).
pub fn loaded_programs() -> Vec<String> {
    let out = sh(Command::new("bpftool").args(["prog", "show", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Array(vec![]));
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// Program names only sockpath loads. The kernel keeps the first 15 characters; bpftool may
/// print the full name from BTF (Debian's does), so names are compared on those 15.
pub const SOCKPATH_PROGRAMS: &[&str] = &[
    "netif_receive_s",
    "sk_data_ready",
    "inet_sock_set_s",
    "tcp_send_reset",
];

pub fn sockpath_programs_loaded() -> usize {
    loaded_programs()
        .iter()
        .filter(|n| {
            let short = &n[..n.len().min(15)];
            SOCKPATH_PROGRAMS.contains(&short)
        })
        .count()
}

/// A `sockpath-test-peer` process listening in a namespace: a listener with an owner of its own.
pub struct Peer {
    child: Child,
    pub pid: u32,
    pub fd: i32,
    accepted: Arc<Mutex<Vec<(i32, SocketAddr)>>>,
}

impl Peer {
    /// `bin` is the peer executable (tests know it as CARGO_BIN_EXE_sockpath-test-peer).
    pub fn listen(bin: &std::path::Path, ns: &Netns, addr: &str, reuseport: bool) -> Self {
        let mut c = ns.command(bin.to_str().expect("UTF-8 path"));
        c.arg(addr);
        if reuseport {
            c.arg("--reuseport");
        }
        let mut child = c
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sockpath-test-peer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("peer on {addr} did not start"));
        let parts: Vec<&str> = first.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"listening"), "peer said {first:?}");
        let pid = parts[1].parse().unwrap();
        let fd = parts[2].parse().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let a2 = accepted.clone();
        thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let p: Vec<&str> = l.split_whitespace().collect();
                if p.len() == 3 && p[0] == "accepted" {
                    if let (Ok(fd), Ok(peer)) = (p[1].parse(), p[2].parse()) {
                        a2.lock().unwrap().push((fd, peer));
                    }
                }
            }
        });
        Peer {
            child,
            pid,
            fd,
            accepted,
        }
    }

    /// The connections accepted so far: (fd, peer address).
    pub fn accepted(&self) -> Vec<(i32, SocketAddr)> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hook serving a stage, from sockpath's start object ("IP receive (ip_rcv): fentry/ip_rcv
/// + ..."): None when the stage is inferred on this kernel.
pub fn stage_hook(start: &Value, stage_prefix: &str) -> Option<String> {
    let line = start["hooks"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with(stage_prefix))?;
    let hook = line.split_once(": ")?.1;
    (!hook.starts_with("none") && !hook.starts_with("inferred")).then(|| hook.to_string())
}

/// Set by the VM runner on kernels that have fentry or kprobes (Debian's stock kernels): there the
/// IP, transport and lookup stages must be observed, not inferred.
pub fn expect_hooks() -> bool {
    std::env::var_os("SOCKPATH_EXPECT_HOOKS").is_some_and(|v| v == "1")
}
