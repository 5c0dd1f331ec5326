//! How strace prints a socket call: what a syscall record's text says.

use std::net::IpAddr;

use sockpath_ebpf::event::SyscallKind;

use super::super::names;
use crate::decode::{Socket, SyscallEv};

fn sockaddr(addr: Option<(IpAddr, u16)>) -> String {
    match addr {
        Some((IpAddr::V4(a), p)) => {
            format!("{{sa_family=AF_INET, sin_port=htons({p}), sin_addr=inet_addr(\"{a}\")}}")
        }
        Some((IpAddr::V6(a), p)) => {
            format!("{{sa_family=AF_INET6, sin6_port=htons({p}), sin6_addr=inet_pton(\"{a}\")}}")
        }
        None => "NULL".into(),
    }
}

fn peer(s: &Socket) -> Option<(IpAddr, u16)> {
    (s.sk != 0 && s.rport != 0).then_some((s.raddr, s.rport))
}

fn result(ret: i64) -> String {
    if ret >= 0 {
        return ret.to_string();
    }
    let e = -ret;
    let msg = std::io::Error::from_raw_os_error(e as i32).to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    format!("-1 {} ({msg})", names::errno(e))
}

/// The call as strace prints it (user-space buffers, which sockpath does not copy, show as ...).
pub fn strace(s: &SyscallEv) -> String {
    let a = &s.args;
    let fd = s.fd;
    let args = match s.kind {
        SyscallKind::Socket => format!(
            "{}, {}, {}",
            names::family(a[0]),
            names::sock_type(a[1]),
            names::ip_proto(a[2])
        ),
        SyscallKind::Bind | SyscallKind::Connect => {
            format!("{fd}, {}, {}", sockaddr(s.addr), a[0])
        }
        SyscallKind::Listen => format!("{fd}, {}", a[0]),
        SyscallKind::Accept | SyscallKind::Accept4 => {
            let addr = if a[0] == 0 {
                "NULL, NULL".to_string()
            } else {
                match peer(&s.sock) {
                    Some(p) => format!(
                        "{}, [{}]",
                        sockaddr(Some(p)),
                        if p.0.is_ipv4() { 16 } else { 28 }
                    ),
                    None => "..., ...".to_string(),
                }
            };
            if s.kind == SyscallKind::Accept4 {
                format!("{fd}, {addr}, {}", accept_flags(a[2]))
            } else {
                format!("{fd}, {addr}")
            }
        }
        SyscallKind::Setsockopt => {
            let (level, name) = names::sockopt(a[0], a[1]);
            if a[3] >= 4 {
                format!("{fd}, {level}, {name}, [{}], {}", a[2] as u32 as i32, a[3])
            } else {
                format!("{fd}, {level}, {name}, ..., {}", a[3])
            }
        }
        SyscallKind::Shutdown => format!("{fd}, {}", names::shutdown_how(a[0])),
        SyscallKind::Close => format!("{fd}"),
        SyscallKind::Read => format!("{fd}, ..., {}", a[0]),
        SyscallKind::Recvfrom => format!("{fd}, ..., {}, ...", a[0]),
        SyscallKind::Recvmsg => format!("{fd}, ..., {}", a[0]),
    };
    format!("{}({args}) = {}", s.kind.name(), result(s.ret))
}

fn accept_flags(f: u64) -> String {
    let mut parts = Vec::new();
    if f as i32 & libc::SOCK_CLOEXEC != 0 {
        parts.push("SOCK_CLOEXEC");
    }
    if f as i32 & libc::SOCK_NONBLOCK != 0 {
        parts.push("SOCK_NONBLOCK");
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}
