//! struct sock / sock_common: a socket's addresses, ports, state and file.

use sockpath_ebpf::{
    config::KernelOffsets,
    event::{SockInfo, TcpState, SOCK_REUSEPORT},
    filter::FilterSet,
    net::{AF_INET6, IPPROTO_UDP},
};

use super::{read, read_ptr};

pub const TCP_TIME_WAIT: u8 = TcpState::TimeWait as u8;
pub const TCP_LISTEN: u8 = TcpState::Listen as u8;
pub const TCP_NEW_SYN_RECV: u8 = TcpState::NewSynRecv as u8;

/// Reads what a socket looks like now, into `si` (written in place: the BPF stack is 512 bytes).
/// Request and time-wait sockets share only sock_common with a full socket, so the fields past
/// it (protocol, file) are read only for full ones.
#[inline(always)]
pub fn info_into(si: &mut SockInfo, sk: u64, o: &KernelOffsets) {
    si.sk = sk;
    si.ino = 0;
    si.netns = 0;
    si.family = 0;
    si.protocol = 0;
    si.lport = 0;
    si.rport = 0;
    si.state = 0;
    si.flags = 0;
    si._pad = [0; 2];
    si.laddr = [0; 16];
    si.raddr = [0; 16];
    if sk == 0 {
        return;
    }
    if common_packed(o) {
        // Six fields in one probe read (each read costs about 60 ns; these hooks run for
        // every watched packet).
        let b = read::<[u8; 20]>(sk, o.skc_daddr).unwrap_or([0; 20]);
        si.family = u16::from_ne_bytes([b[16], b[17]]);
        si.state = b[18];
        si.lport = u16::from_ne_bytes([b[14], b[15]]);
        si.rport = u16::from_be_bytes([b[12], b[13]]);
        if si.family != AF_INET6 {
            si.raddr[..4].copy_from_slice(&b[0..4]);
            si.laddr[..4].copy_from_slice(&b[4..8]);
        }
    } else {
        si.family = read::<u16>(sk, o.skc_family).unwrap_or(0);
        si.state = read::<u8>(sk, o.skc_state).unwrap_or(0);
        si.lport = read::<u16>(sk, o.skc_num).unwrap_or(0);
        si.rport = u16::from_be(read::<u16>(sk, o.skc_dport).unwrap_or(0));
        if si.family != AF_INET6 {
            let l = read::<[u8; 4]>(sk, o.skc_rcv_saddr).unwrap_or([0; 4]);
            let r = read::<[u8; 4]>(sk, o.skc_daddr).unwrap_or([0; 4]);
            si.laddr[..4].copy_from_slice(&l);
            si.raddr[..4].copy_from_slice(&r);
        }
    }
    if si.family == AF_INET6 {
        si.laddr = read::<[u8; 16]>(sk, o.skc_v6_rcv_saddr).unwrap_or([0; 16]);
        si.raddr = read::<[u8; 16]>(sk, o.skc_v6_daddr).unwrap_or([0; 16]);
    }
    if let Ok(net) = read_ptr(sk, o.skc_net) {
        si.netns = read::<u32>(net, o.net_inum).unwrap_or(0);
    }
    if si.state != TCP_NEW_SYN_RECV && si.state != TCP_TIME_WAIT {
        if si.lport == 0 {
            si.lport = u16::from_be(read::<u16>(sk, o.inet_sport).unwrap_or(0));
        }
        si.protocol = read::<u16>(sk, o.sk_protocol).unwrap_or(0);
        if (si.state == TCP_LISTEN || si.protocol == IPPROTO_UDP as u16)
            && read::<u64>(sk, o.sk_reuseport_cb).unwrap_or(0) != 0
        {
            si.flags |= SOCK_REUSEPORT;
        }
        if let Ok(sock) = read_ptr(sk, o.sk_socket) {
            si.ino = read::<u64>(sock, o.socket_ino).unwrap_or(0);
        }
    }
}

/// Whether sock_common starts as on every kernel so far: skc_daddr, skc_rcv_saddr, skc_hash,
/// skc_dport, skc_num, skc_family, skc_state, side by side in 19 bytes. Where BTF says
/// otherwise, the fields are read one by one.
#[inline(always)]
fn common_packed(o: &KernelOffsets) -> bool {
    o.skc_rcv_saddr == o.skc_daddr + 4
        && o.skc_dport == o.skc_daddr + 12
        && o.skc_num == o.skc_daddr + 14
        && o.skc_family == o.skc_daddr + 16
        && o.skc_state == o.skc_daddr + 18
}

/// A socket's family and ports, for deciding early that a call is not about a watched socket.
pub struct Ports {
    pub family: u16,
    pub lport: u16,
    pub rport: u16,
}

/// Reads family and ports in one probe read where they sit side by side in sock_common
/// (skc_dport, skc_num, then skc_family, as on every kernel so far), in three where BTF says
/// otherwise.
#[inline(always)]
pub fn ports(sk: u64, o: &KernelOffsets) -> Ports {
    if o.skc_num == o.skc_dport + 2 && o.skc_family == o.skc_dport + 4 {
        let b = read::<[u8; 6]>(sk, o.skc_dport).unwrap_or([0; 6]);
        Ports {
            rport: u16::from_be_bytes([b[0], b[1]]),
            lport: u16::from_ne_bytes([b[2], b[3]]),
            family: u16::from_ne_bytes([b[4], b[5]]),
        }
    } else {
        Ports {
            family: read::<u16>(sk, o.skc_family).unwrap_or(0),
            lport: read::<u16>(sk, o.skc_num).unwrap_or(0),
            rport: u16::from_be(read::<u16>(sk, o.skc_dport).unwrap_or(0)),
        }
    }
}

/// The cheap part of the filter: one read of the socket's ports (`ports`). Hooks such as
/// sk_data_ready and sock_recv_length fire for every socket on the machine, so this runs
/// before anything is reserved or copied.
#[inline(always)]
pub fn ports_match<F: FilterSet>(sk: u64, f: &F, o: &KernelOffsets) -> bool {
    if sk == 0 {
        return false;
    }
    if f.any_port() {
        return true;
    }
    let Ports { lport, rport, .. } = ports(sk, o);
    if f.has_port(lport) || f.has_port(rport) {
        return true;
    }
    // On the way to TCP_CLOSE, inet_put_port() has already cleared skc_num; the port is still in
    // inet_sport (full sockets only: request and time-wait sockets keep skc_num).
    if lport == 0 {
        let state = read::<u8>(sk, o.skc_state).unwrap_or(0);
        if state != TCP_NEW_SYN_RECV && state != TCP_TIME_WAIT {
            return f.has_port(u16::from_be(read::<u16>(sk, o.inet_sport).unwrap_or(0)));
        }
    }
    false
}

/// Whether the socket is orphaned (SOCK_DEAD): its user closed it, nobody is told its errors.
#[inline(always)]
pub fn dead(sk: u64, o: &KernelOffsets) -> bool {
    read::<u64>(sk, o.sk_flags).unwrap_or(0) & 1 != 0
}

/// TCP's copied_seq: the sequence number up to which the reader has consumed the stream.
#[inline(always)]
pub fn tcp_copied_seq(sk: u64, o: &KernelOffsets) -> u32 {
    read::<u32>(sk, o.tcp_copied_seq).unwrap_or(0)
}

/// The listener a request socket (TCP_NEW_SYN_RECV) belongs to.
#[inline(always)]
pub fn request_listener(req: u64, o: &KernelOffsets) -> u64 {
    read_ptr(req, o.skc_listener).unwrap_or(0)
}

#[inline(always)]
pub fn sk_err(sk: u64, o: &KernelOffsets) -> i32 {
    read::<i32>(sk, o.sk_err).unwrap_or(0)
}

/// Jiffies left before a time-wait socket's timer fires (the end of its FIN_WAIT2 or
/// TIME_WAIT), read with the current jiffies at the same moment; 0 once due. None where this
/// kernel's BTF did not give the timer's place.
#[inline(always)]
pub fn tw_jiffies_left(tw: u64, o: &KernelOffsets) -> Option<u32> {
    if o.tw_timer_expires == 0 {
        return None;
    }
    let expires = read::<u64>(tw, o.tw_timer_expires).ok()?;
    // SAFETY: no arguments; jiffies_64.
    let now = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
    let left = expires.wrapping_sub(now) as i64;
    Some(left.clamp(0, u32::MAX as i64) as u32)
}

/// A listener's namespace's net.ipv4.tcp_max_syn_backlog and net.ipv4.tcp_syncookies, as
/// tcp_conn_request() reads them for a SYN. None where this kernel's BTF did not give them.
#[inline(always)]
pub fn syn_sysctls(sk: u64, o: &KernelOffsets) -> Option<(u32, u8)> {
    if o.net_max_syn_backlog == 0 || o.net_syncookies == 0 {
        return None;
    }
    let net = read_ptr(sk, o.skc_net).ok()?;
    let backlog = read::<i32>(net, o.net_max_syn_backlog).ok()?;
    let cookies = read::<u8>(net, o.net_syncookies).ok()?;
    Some((backlog.max(0) as u32, cookies))
}
