//! The programs the tests compare sockpath with, writing files: tcpdump and tshark, and
//! sockpath itself recording a journey log.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sockpath_tests::{bin, require_root, unique, Netns};

/// The tests read files with the real tshark; without it they fail and say why (rather than
/// pass having checked nothing).
pub fn require_tshark() {
    let found = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "tshark is not installed: `cargo xtask setup` installs it (Debian package tshark)"
    );
}

pub fn temp_path(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sockpath-pcapng-{}-{}.{ext}",
        std::process::id(),
        unique()
    ))
}

pub fn interrupt(child: &mut Child, what: &str) -> Option<i32> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "{what} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A capture program writing a file: tcpdump (pcap) or tshark (pcapng, through dumpcap).
pub struct FileCapture {
    pub child: Child,
    pub path: PathBuf,
}

impl FileCapture {
    pub fn tcpdump(ns: &Netns, iface: &str, filter: &str) -> Self {
        let path = temp_path("pcap");
        let mut cmd = ns.command("tcpdump");
        cmd.args(["-i", iface, "-n", "-U", "--time-stamp-precision=nano", "-w"])
            .arg(&path)
            .arg(filter);
        Self::spawn(cmd, path, "listening on")
    }

    pub fn tshark(ns: &Netns, iface: &str, filter: &str) -> Self {
        let path = temp_path("pcapng");
        let mut cmd = ns.command("tshark");
        cmd.args(["-i", iface, "-n", "-q", "-f", filter, "-w"])
            .arg(&path);
        Self::spawn(cmd, path, "Capturing on")
    }

    /// Starts `cmd` and waits until its stderr says `ready` (the filter is attached).
    pub fn spawn(mut cmd: Command, path: PathBuf, ready: &str) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains(ready) => break,
                Some(Ok(_)) => continue,
                _ => panic!("{cmd:?} did not start"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        FileCapture { child, path }
    }

    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(200));
        interrupt(&mut self.child, "the capture");
        self.path.clone()
    }
}

/// `sockpath watch --json ... > LOG`: the journey log exactly as sockpath printed it.
pub struct Recording {
    pub child: Child,
    pub log: PathBuf,
}

impl Recording {
    pub fn start(args: &[&str]) -> Self {
        require_root();
        let log = temp_path("jsonl");
        let child = Command::new(bin())
            .args(["watch", "--json", "--standalone"])
            .args(args)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains(r#""type":"start""#)
        {
            assert!(Instant::now() < deadline, "sockpath did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Recording { child, log }
    }

    /// Stops sockpath; returns the log's path and its journeys.
    pub fn stop(mut self) -> (PathBuf, Vec<Value>) {
        // Let the last journeys settle (sockpath waits for reads and accepts).
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(interrupt(&mut self.child, "sockpath"), Some(0));
        let journeys = std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "journey")
            .collect();
        (self.log.clone(), journeys)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
