//! tcpdump in a test's namespace: the independent witness of what was on the wire.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use crate::{sh, unique, Netns};

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
