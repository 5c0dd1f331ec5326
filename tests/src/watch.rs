//! A running `sockpath watch --json` and what it reported.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{bin, require_root};

/// How long sockpath may take to attach and print its start line. On the host it takes well
/// under a second; in the emulated VMs (qemu TCG, on a two-core machine other jobs share) it
/// was measured at 25 s on 6.1 and 26-45 s on sid's 7.2 for `sockpath probes`.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What one sockpath run reported.
#[derive(Debug, Default)]
pub struct Report {
    pub start: Value,
    pub journeys: Vec<Value>,
    pub syscalls: Vec<Value>,
    pub notes: Vec<Value>,
    pub summary: Value,
    /// Lines of other types (`sockpath stats --json`: "interval", "total").
    pub other: Vec<Value>,
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
    /// Starts sockpath with `args` after `watch --json --standalone` (its own programs, even if
    /// a daemon runs on this machine) and waits until every probe is attached.
    pub fn start(args: &[&str]) -> Self {
        require_root();
        let mut c = Command::new(bin());
        c.arg("watch").arg("--json").arg("--standalone").args(args);
        Self::spawn(c)
    }

    /// Runs `cmd` (a `sockpath watch --json ...`) and waits for its start line.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
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
        let start = match rx.recv_timeout(START_TIMEOUT) {
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

    /// Whether it printed, so far, a line of type `kind` for which `f` holds.
    pub fn printed(&self, kind: &str, f: impl Fn(&Value) -> bool) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["type"] == kind && f(v))
    }

    /// Lines of type `kind` it printed so far.
    pub fn count(&self, kind: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == kind)
            .count()
    }

    /// Stops sockpath with `sig` (SIGINT like Ctrl-C, or SIGTERM) and collects its report.
    pub fn stop_with(self, sig: i32) -> Report {
        // Let the last journeys settle (sockpath waits for reads and accepts).
        thread::sleep(Duration::from_millis(300));
        self.signal(sig);
        self.finish()
    }

    /// Waits for sockpath to end by itself (its --duration, or its daemon stopping) and
    /// collects its report.
    pub fn finish(mut self) -> Report {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait sockpath") {
                break s;
            }
            assert!(Instant::now() < deadline, "sockpath did not exit");
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
                _ => report.other.push(v),
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
