//! Names for the numbers the kernel reports: TCP states, errnos, socket constants. The names
//! of kernel enums whose values differ between kernels are read at start-up
//! (`kernel::names::KernelNames`).

use sockpath_ebpf::event::TcpState;

/// The name of a TCP state number as events carry it ("UNKNOWN" for one no socket takes).
pub fn tcp_state(n: u8) -> &'static str {
    TcpState::from_u8(n).map_or("UNKNOWN", TcpState::name)
}

/// errno names strace prints for the socket calls followed.
pub fn errno(e: i64) -> String {
    let name = match e {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        22 => "EINVAL",
        24 => "EMFILE",
        32 => "EPIPE",
        88 => "ENOTSOCK",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return format!("E{e}"),
    };
    name.to_string()
}

pub fn family(f: u64) -> String {
    match f as i32 {
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        n => format!("{n}"),
    }
}

/// socket()'s type argument, with its flags, as strace prints it.
pub fn sock_type(t: u64) -> String {
    let t = t as i32;
    let base = match t & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
        libc::SOCK_RAW => "SOCK_RAW".to_string(),
        n => n.to_string(),
    };
    let mut parts = vec![base];
    if t & libc::SOCK_NONBLOCK != 0 {
        parts.push("SOCK_NONBLOCK".into());
    }
    if t & libc::SOCK_CLOEXEC != 0 {
        parts.push("SOCK_CLOEXEC".into());
    }
    parts.join("|")
}

pub fn ip_proto(p: u64) -> String {
    match p {
        0 => "0".into(),
        6 => "IPPROTO_TCP".into(),
        17 => "IPPROTO_UDP".into(),
        n => n.to_string(),
    }
}

pub fn sockopt(level: u64, name: u64) -> (String, String) {
    let level_s = match level as i32 {
        libc::SOL_SOCKET => "SOL_SOCKET".to_string(),
        libc::IPPROTO_TCP => "SOL_TCP".to_string(),
        libc::IPPROTO_IP => "SOL_IP".to_string(),
        libc::IPPROTO_IPV6 => "SOL_IPV6".to_string(),
        n => n.to_string(),
    };
    let name_s = match (level as i32, name as i32) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => "SO_REUSEADDR".to_string(),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => "SO_REUSEPORT".to_string(),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SO_KEEPALIVE".to_string(),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => "SO_RCVBUF".to_string(),
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => "SO_SNDBUF".to_string(),
        (libc::SOL_SOCKET, libc::SO_LINGER) => "SO_LINGER".to_string(),
        (libc::SOL_SOCKET, libc::SO_BROADCAST) => "SO_BROADCAST".to_string(),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => "TCP_NODELAY".to_string(),
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => "IPV6_V6ONLY".to_string(),
        (_, n) => n.to_string(),
    };
    (level_s, name_s)
}

pub fn shutdown_how(h: u64) -> String {
    match h {
        0 => "SHUT_RD".into(),
        1 => "SHUT_WR".into(),
        2 => "SHUT_RDWR".into(),
        n => n.to_string(),
    }
}

pub fn icmp(type_: i32, code: i32) -> String {
    match (type_, code) {
        (3, 0) => "ICMP net unreachable".into(),
        (3, 1) => "ICMP host unreachable".into(),
        (3, 2) => "ICMP protocol unreachable".into(),
        (3, 3) => "ICMP port unreachable".into(),
        (3, 4) => "ICMP fragmentation needed".into(),
        (11, _) => "ICMP time exceeded".into(),
        (t, c) => format!("ICMP type {t} code {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(tcp_state(TcpState::Listen as u8), "LISTEN");
        assert_eq!(tcp_state(0), "UNKNOWN");
        assert_eq!(tcp_state(13), "UNKNOWN");
        assert_eq!(errno(111), "ECONNREFUSED");
        assert_eq!(errno(4242), "E4242");
        assert_eq!(sock_type(1 | 0o4000), "SOCK_STREAM|SOCK_NONBLOCK");
        assert_eq!(sockopt(1, 2), ("SOL_SOCKET".into(), "SO_REUSEADDR".into()));
        assert_eq!(icmp(3, 3), "ICMP port unreachable");
    }

    #[test]
    fn tcp_states_round_trip_through_their_numbers() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(
                *s as usize,
                i + 1,
                "the kernel numbers them from 1, in this order"
            );
            assert_eq!(TcpState::from_u8(*s as u8), Some(*s));
        }
    }
}
