//! Syscall numbers of the followed calls on the architecture sockpath was built for (which is
//! the running kernel's): the eBPF programs map a number to a call through this table.

use sockpath_ebpf::event::SyscallKind;

pub fn numbers() -> Vec<(u32, SyscallKind)> {
    let table: [(libc::c_long, SyscallKind); 12] = [
        (libc::SYS_socket, SyscallKind::Socket),
        (libc::SYS_bind, SyscallKind::Bind),
        (libc::SYS_listen, SyscallKind::Listen),
        (libc::SYS_accept, SyscallKind::Accept),
        (libc::SYS_accept4, SyscallKind::Accept4),
        (libc::SYS_connect, SyscallKind::Connect),
        (libc::SYS_setsockopt, SyscallKind::Setsockopt),
        (libc::SYS_shutdown, SyscallKind::Shutdown),
        (libc::SYS_close, SyscallKind::Close),
        (libc::SYS_read, SyscallKind::Read),
        (libc::SYS_recvfrom, SyscallKind::Recvfrom),
        (libc::SYS_recvmsg, SyscallKind::Recvmsg),
    ];
    table.iter().map(|(nr, k)| (*nr as u32, *k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockpath_ebpf::config::MAX_SYSCALL_NR;

    #[test]
    fn every_kind_has_a_number_inside_the_map() {
        let n = numbers();
        assert_eq!(n.len(), SyscallKind::ALL.len());
        assert!(n.iter().all(|(nr, _)| *nr < MAX_SYSCALL_NR));
    }
}
