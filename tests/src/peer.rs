//! `sockpath-test-peer`: a listener in a process of its own, so its owner is not the test.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread,
};

use crate::Netns;

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
