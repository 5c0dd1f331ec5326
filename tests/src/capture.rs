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

impl Drop for Capture {
    /// A test that failed before `stop` leaves no tcpdump behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The source and destination ports of a packet as `tcpdump -n` prints it
/// ("... IP 127.0.0.1.45678 > 127.0.0.1.4000: Flags [S], ..."); None for a packet without ports.
pub fn ports(line: &str) -> Option<(u16, u16)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == ">")?;
    // "ADDR.PORT": the part before the last dot is an address, the whole is not.
    let port = |w: &str| {
        let w = w.trim_end_matches(':');
        let (addr, port) = w.rsplit_once('.')?;
        let is_ip = |s: &str| s.parse::<std::net::IpAddr>().is_ok();
        (is_ip(addr) && !is_ip(w)).then(|| port.parse().ok())?
    };
    Some((port(words.get(i - 1)?)?, port(words.get(i + 1)?)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_of_tcpdump_lines() {
        assert_eq!(
            super::ports("1.5 IP 127.0.0.1.45678 > 127.0.0.1.4000: Flags [S], seq 1, length 0"),
            Some((45678, 4000))
        );
        assert_eq!(
            super::ports("1.5 IP6 ::1.4000 > ::1.45678: UDP, length 5"),
            Some((4000, 45678))
        );
        assert_eq!(
            super::ports("1.5 IP 127.0.0.1 > 127.0.0.1: ICMP echo request"),
            None
        );
    }
}
