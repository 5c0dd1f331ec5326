//! Sockets that existed before sockpath started: which process holds each (from
//! /proc/PID/fd/N -> socket:[INODE]) and which of them the filter watches (from
//! /proc/PID/net/{tcp,tcp6,udp,udp6}, read once per network namespace).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use sockpath_ebpf::net::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};

use crate::{decode::Socket, filter::WatchFilter, journey::model::Owner};

/// Socket inode -> the first process (lowest pid) and fd holding it, for every process.
pub struct Scan {
    pub owners: HashMap<u64, Owner>,
    /// Processes holding a socket the filter matches (owned by a watched process, if the filter
    /// names owners).
    pub watched_pids: HashSet<u32>,
    /// Local ports of the sockets the processes named by the filter's owners hold (empty when
    /// it names none).
    pub owner_ports: BTreeSet<u16>,
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The socket inodes a process holds, with their fds.
fn socket_fds(pid: u32) -> Vec<(i32, u64)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            let t = target.to_str()?;
            let ino = t
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, ino))
        })
        .collect()
}

/// Parses "0100007F:0FA0" (IPv4) or the 32-hex-digit IPv6 form of /proc/net/tcp.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let addr = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.to_le_bytes(),
        )),
        32 => {
            // Four 32-bit words, each in host (little-endian) order.
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// Sockets of one /proc/PID/net/{tcp,udp}[6] table, by inode.
fn parse_table(text: &str, protocol: u16) -> Vec<(u64, Socket)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (laddr, lport) = parse_endpoint(f.get(1)?)?;
            let (raddr, rport) = parse_endpoint(f.get(2)?)?;
            let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let ino: u64 = f.get(9)?.parse().ok()?;
            Some((
                ino,
                Socket {
                    sk: 1,
                    ino,
                    netns: 0,
                    family: if laddr.is_ipv4() { AF_INET } else { AF_INET6 },
                    protocol,
                    lport,
                    rport,
                    state,
                    reuseport: false,
                    laddr,
                    raddr,
                },
            ))
        })
        .collect()
}

/// Every process's sockets, read once: what `scan` selects from for a filter (a daemon reads
/// /proc once for all its watchers).
pub struct Procs {
    owners: HashMap<u64, Owner>,
    /// pid -> its comm and the inodes of the sockets it holds.
    by_pid: HashMap<u32, (Arc<str>, Vec<u64>)>,
    /// inode -> the socket, from every network namespace's tables.
    sockets: HashMap<u64, Socket>,
}

/// Reads every process's sockets from /proc.
pub fn read() -> Procs {
    let mut owners = HashMap::new();
    let mut by_pid: HashMap<u32, (Arc<str>, Vec<u64>)> = HashMap::new();
    let mut netns_pid: HashMap<String, u32> = HashMap::new();
    for pid in pids() {
        let fds = socket_fds(pid);
        if fds.is_empty() {
            continue;
        }
        if let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/net")) {
            netns_pid
                .entry(ns.to_string_lossy().into_owned())
                .or_insert(pid);
        }
        let c: Arc<str> = comm(pid).into();
        for (fd, ino) in &fds {
            owners.entry(*ino).or_insert(Owner {
                pid,
                comm: c.clone(),
                fd: *fd,
            });
        }
        by_pid.insert(pid, (c, fds.into_iter().map(|(_, i)| i).collect()));
    }
    let mut sockets = HashMap::new();
    for pid in netns_pid.values() {
        for (file, proto) in [
            ("tcp", IPPROTO_TCP),
            ("tcp6", IPPROTO_TCP),
            ("udp", IPPROTO_UDP),
            ("udp6", IPPROTO_UDP),
        ] {
            let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
                continue;
            };
            sockets.extend(
                parse_table(&text, proto as u16)
                    .into_iter()
                    .filter(|(ino, _)| *ino != 0),
            );
        }
    }
    Procs {
        owners,
        by_pid,
        sockets,
    }
}

impl Procs {
    /// What `filter` watches among them.
    pub fn select(&self, filter: &WatchFilter) -> Scan {
        let mut watched_pids = HashSet::new();
        let mut owner_ports = BTreeSet::new();
        for (pid, (comm, inos)) in &self.by_pid {
            if !filter.owner_matches(*pid, comm) {
                continue;
            }
            let held = || inos.iter().filter_map(|i| self.sockets.get(i));
            if held().any(|s| filter.socket_matches(s)) {
                watched_pids.insert(*pid);
            }
            if !filter.owners.is_empty() {
                owner_ports.extend(held().map(|s| s.lport).filter(|p| *p != 0));
            }
        }
        Scan {
            owners: self.owners.clone(),
            watched_pids,
            owner_ports,
        }
    }
}

pub fn scan(filter: &WatchFilter) -> Scan {
    read().select(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let v = parse_table(text, 6);
        assert_eq!(v.len(), 1);
        let (ino, s) = &v[0];
        assert_eq!(*ino, 12345);
        assert_eq!(s.laddr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(s.lport, 4000);
        assert_eq!(s.state, 10);
    }

    #[test]
    fn parses_ipv6_endpoints() {
        let (a, p) = parse_endpoint("00000000000000000000000001000000:0FA0").unwrap();
        assert_eq!(a, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(p, 4000);
        assert!(parse_endpoint("zz:1").is_none());
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let s = scan(&WatchFilter::port(port));
        assert!(s.watched_pids.contains(&std::process::id()));
        assert!(s.owner_ports.is_empty());
    }

    #[test]
    fn finds_the_ports_of_a_watched_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        let mut f = WatchFilter::default();
        f.owners.pids.insert(me);
        let s = scan(&f);
        assert!(s.watched_pids.contains(&me));
        assert!(s.owner_ports.contains(&port));
        // Another process's filter: neither our pid nor our port.
        let mut other = WatchFilter::default();
        other.owners.pids.insert(1);
        let s = scan(&other);
        assert!(!s.watched_pids.contains(&me));
    }
}
