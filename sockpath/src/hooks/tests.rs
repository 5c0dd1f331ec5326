use std::collections::HashSet;

use sockpath_ebpf::event::{Hop, LookupTable, QueueFullHook, SyscallKind};

use super::*;

#[test]
fn every_stage_has_one_row_in_journey_order() {
    let stages: Vec<StageId> = TABLE.iter().map(|s| s.stage).collect();
    assert_eq!(stages, StageId::ALL);
}

#[test]
fn every_program_is_declared_once() {
    let mut seen = HashSet::new();
    for (stage, p) in programs() {
        assert!(seen.insert(p.name), "{} twice (again in {stage:?})", p.name);
    }
}

#[test]
fn every_stage_prefers_trampolines_then_kprobes_then_tracepoints() {
    for spec in TABLE {
        let ranks: Vec<u8> = spec.hooks.iter().map(|h| h.kind().rank()).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "{}: {ranks:?}",
            spec.name
        );
        for h in spec.hooks {
            assert!(
                h.programs.iter().all(|p| p.attach.kind() == h.kind()),
                "{}: a hook mixes kinds",
                spec.name
            );
            assert!(
                h.programs.iter().any(|p| !p.optional),
                "{}: a hook of optional programs only",
                spec.name
            );
        }
    }
}

#[test]
fn whichever_hook_serves_a_stage_it_reports_the_same_observations() {
    // So a journey stage can name the program that saw it on any kernel.
    for spec in TABLE {
        let reports = |h: &Hook| {
            let mut r: Vec<String> = h
                .programs
                .iter()
                .map(|p| format!("{:?}", p.reports))
                .collect();
            r.sort();
            r.dedup();
            r
        };
        for h in &spec.hooks[1..] {
            assert_eq!(reports(h), reports(&spec.hooks[0]), "{}", spec.name);
        }
    }
}

#[test]
fn ipv6_twins_are_optional_and_ipv4_ones_are_not() {
    for (_, p) in programs() {
        if let Attach::Fentry { function }
        | Attach::Fexit { function }
        | Attach::Kprobe { function }
        | Attach::Kretprobe { function } = p.attach
        {
            assert_eq!(p.optional, function.contains('6'), "{}", p.name);
        }
    }
}

#[test]
fn oldest_kernels_follow_what_each_program_needs() {
    let since = |name: &str| {
        programs()
            .find(|(_, p)| p.name == name)
            .map(|(_, p)| p.since().to_string())
            .unwrap()
    };
    // The ring buffer every program writes to.
    assert_eq!(since("netif_receive_skb"), "5.8");
    assert_eq!(since("kprobe_ip_rcv"), "5.8");
    // The tracepoint's third argument, a helper, trampolines of many arguments.
    assert_eq!(since("kfree_skb"), "5.17");
    assert_eq!(since("fexit_inet_recvmsg"), "5.17");
    assert_eq!(since("fexit_inet_recvmsg_stack"), "5.8");
    assert_eq!(since("kfree_skb_no_reason"), "5.8");
    assert_eq!(since("fexit_inet_lookup_established"), "6.6");
    assert_eq!(since("sock_recv_length"), "6.3");
    // A hook is as old as its required programs; an optional one may need a later kernel.
    let queue_full = &spec(StageId::QueueFull).hooks[0];
    assert_eq!(queue_full.since().to_string(), "5.8");
}

#[test]
fn a_tracepoint_only_kernel_gets_each_stages_tracepoint() {
    use HookKind::*;
    let c = HookChoice::default();
    let kinds: Vec<HookKind> = StageId::ALL.iter().map(|s| c.kind(*s)).collect();
    assert_eq!(
        kinds,
        [
            TpBtf, TpBtf, Tracepoint, Inferred, Inferred, Inferred, Inferred, TpBtf, TpBtf, TpBtf,
            TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, TpBtf, Tracepoint
        ]
    );
    assert_eq!(c.hook(StageId::Route), (Tracepoint, "fib/fib_table_lookup"));
    assert_eq!(c.hook(StageId::Queue), (TpBtf, "sk_data_ready"));
    assert_eq!(c.hook(StageId::IpReceive), (Inferred, ""));
    assert_eq!(c.reset_received(), (TpBtf, "tcp_receive_reset"));
    assert_eq!(c.error_report(), (TpBtf, "inet_sk_error_report"));
    assert_eq!(
        c.syscall_exit(SyscallKind::Accept),
        (Tracepoint, "syscalls/sys_exit_accept")
    );
    assert_eq!(
        c.syscall_exit(SyscallKind::Accept4),
        (Tracepoint, "syscalls/sys_exit_accept4")
    );
}

#[test]
fn queue_full_names_the_tracepoint_that_fired() {
    let c = HookChoice::default();
    assert_eq!(
        c.queue_full(QueueFullHook::SockRcvqueueFull),
        (HookKind::TpBtf, "sock_rcvqueue_full")
    );
    assert_eq!(
        c.queue_full(QueueFullHook::UdpFailQueueRcvSkb),
        (HookKind::TpBtf, "udp_fail_queue_rcv_skb")
    );
}

/// A kernel with trampolines: every stage gets its first hook.
fn first_hooks() -> HookChoice {
    HookChoice::new(TABLE.iter().map(|s| (s.stage, &s.hooks[0])))
}

#[test]
fn function_hooks_name_the_function_the_event_came_from() {
    use HookKind::*;
    let c = first_hooks();
    assert_eq!(c.hop(Hop::IpRcv), (Fentry, "ip_rcv"));
    assert_eq!(c.hop(Hop::Ip6Input), (Fentry, "ip6_input"));
    assert_eq!(c.hop(Hop::Udpv6Rcv), (Fentry, "udpv6_rcv"));
    assert_eq!(
        c.lookup(LookupTable::Established, 4),
        (Fexit, "__inet_lookup_established")
    );
    assert_eq!(
        c.lookup(LookupTable::Listener, 6),
        (Fexit, "inet6_lookup_listener")
    );
    assert_eq!(c.lookup(LookupTable::Udp, 6), (Fexit, "__udp6_lib_lookup"));
    assert_eq!(c.hook(StageId::Queue), (Fentry, "sock_def_readable"));
    assert_eq!(c.hook(StageId::Read), (Fexit, "inet_recvmsg"));
    assert_eq!(c.hook(StageId::ResetSent), (Fentry, "tcp_v4_send_reset"));
    assert_eq!(c.hook(StageId::IcmpSent), (Fentry, "__icmp_send"));

    // The kprobe fallbacks name the same functions.
    let k = HookChoice::new(
        TABLE
            .iter()
            .filter_map(|s| s.hooks.get(1).map(|h| (s.stage, h))),
    );
    assert_eq!(k.hop(Hop::TcpV4Rcv), (Kprobe, "tcp_v4_rcv"));
    assert_eq!(
        k.lookup(LookupTable::Udp, 4),
        (Kretprobe, "__udp4_lib_lookup")
    );
}

#[test]
fn syscall_tracepoints_are_named_after_the_call() {
    assert_eq!(
        syscall_tracepoint(SyscallKind::Connect, false),
        "syscalls/sys_enter_connect"
    );
    assert_eq!(
        syscall_tracepoint(SyscallKind::Setsockopt, true),
        "syscalls/sys_exit_setsockopt"
    );
}

#[test]
fn accept_has_syscall_programs_of_its_own() {
    let syscall_programs: Vec<Attach> = spec(StageId::Syscalls)
        .hooks
        .iter()
        .flat_map(|h| h.programs.iter().map(|p| p.attach))
        .collect();
    for exit in [false, true] {
        for accept in [false, true] {
            assert!(
                syscall_programs.contains(&Attach::Syscalls { exit, accept }),
                "exit {exit}, accept {accept}"
            );
        }
    }
}
