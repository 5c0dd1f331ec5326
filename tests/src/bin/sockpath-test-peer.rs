//! A listening process for the listener-choice tests: each listener the tests need is its own
//! process, so sockpath has a different owner to name for each.
//!
//! `sockpath-test-peer ADDR:PORT [--reuseport] [--accept N]` prints `listening PID FD`, then
//! for each connection it accepts `accepted FD PEER_ADDR:PEER_PORT`, reads it to the end and
//! closes it; it exits after N connections.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    os::fd::{AsRawFd, FromRawFd},
};

fn listen(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
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
        let l = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let opt = (&one as *const libc::c_int).cast();
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, opt, size);
        if reuseport {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, opt, size);
        }
        let SocketAddr::V4(v4) = addr else {
            return Err(std::io::Error::other("IPv4 only"));
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), len) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::listen(fd, 64) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(l)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: sockpath-test-peer ADDR:PORT [--reuseport] [--accept N]");
        std::process::exit(2);
    };
    let reuseport = args.iter().any(|a| a == "--reuseport");
    let count: usize = args
        .iter()
        .position(|a| a == "--accept")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let l = match listen(addr, reuseport) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen {addr}: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {} {}", std::process::id(), l.as_raw_fd());
    let _ = out.flush();
    for _ in 0..count {
        let Ok((mut s, peer)) = l.accept() else {
            break;
        };
        let _ = writeln!(out, "accepted {} {peer}", s.as_raw_fd());
        let _ = out.flush();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
}
