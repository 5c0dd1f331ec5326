//! A running `sockpath daemon` on a socket of the test's own, and watchers that use it as root,
//! as a member of its group, or as someone outside it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream, process::CommandExt},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{bin, require_root, unique, Watch};

/// The daemon's group in the tests: a number, so guests without /etc/group entries can run
/// them too.
pub const TEST_GID: u32 = 64_123;
/// The unprivileged user watchers run as.
pub const NOBODY: u32 = 65_534;

/// Who runs a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Root,
    /// uid 65534 with the daemon's group as its only supplementary group.
    Member,
    /// uid 65534 in no group of the daemon's.
    Outsider,
}

impl User {
    /// Makes `cmd` run as this user (after fork, before exec).
    pub fn apply(self, cmd: &mut Command) {
        let groups: &'static [libc::gid_t] = match self {
            User::Root => return,
            User::Member => &[TEST_GID],
            User::Outsider => &[],
        };
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(NOBODY) != 0
                    || libc::setuid(NOBODY) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

pub struct Daemon {
    child: Child,
    dir: PathBuf,
    pub socket: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `sockpath daemon --socket DIR/sockpath.sock --group 64123` with `args` and waits
    /// until it answers.
    pub fn start(args: &[&str]) -> Self {
        require_root();
        let dir = std::env::temp_dir().join(format!(
            "sockpath-daemon-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.join("sockpath.sock");
        let mut child = Command::new(bin())
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .args(["--group", &TEST_GID.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockpath daemon");
        let log = Arc::new(Mutex::new(String::new()));
        let l2 = log.clone();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut g = l2.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        let mut d = Daemon {
            child,
            dir,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(&d.socket).is_err() {
            if let Ok(Some(s)) = d.child.try_wait() {
                panic!("sockpath daemon exited ({s}): {}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "sockpath daemon did not listen: {}",
                d.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends `lines` (as given, each followed by a newline) on one connection and returns every
    /// line the daemon sent back within `wait` (or until it closed the connection).
    pub fn exchange(&self, lines: &[&[u8]], wait: Duration) -> Vec<String> {
        let mut s = UnixStream::connect(&self.socket).expect("connect to the daemon");
        for l in lines {
            s.write_all(l).unwrap();
            s.write_all(b"\n").unwrap();
        }
        s.set_read_timeout(Some(wait)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The hello reply.
    pub fn hello(&self) -> Value {
        let mut s = UnixStream::connect(&self.socket).expect("connect to the daemon");
        s.write_all(b"{\"request\":\"hello\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("hello reply {line:?}: {e}"))
    }

    /// Waits until `hello` says `watchers` watchers and `attached`.
    pub fn wait_for(&self, watchers: u64, attached: bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = self.hello();
            if h["watchers"] == watchers && h["attached"] == attached {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "daemon never had {watchers} watchers, attached {attached}: {h}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `sockpath watch --daemon SOCKET --json ARGS` as `who`, started once its start line came.
    pub fn watch(&self, who: User, args: &[&str]) -> Watch {
        let mut c = Command::new(bin());
        c.arg("watch")
            .arg("--daemon")
            .arg(&self.socket)
            .arg("--json")
            .args(args);
        who.apply(&mut c);
        Watch::spawn(c)
    }

    /// Runs `sockpath ARGS --daemon SOCKET` as `who` to its end.
    pub fn run(&self, who: User, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.args(args).arg("--daemon").arg(&self.socket);
        who.apply(&mut c);
        c.stdin(Stdio::null())
            .output()
            .expect("run sockpath against the daemon")
    }

    /// Stops it with `sig` and returns its exit code and log.
    pub fn stop_with(mut self, sig: i32) -> (Option<i32>, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for the daemon") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "sockpath daemon did not exit after signal {sig}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        thread::sleep(Duration::from_millis(50));
        (status.code(), self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
