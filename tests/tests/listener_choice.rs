//! Which listener a connection reaches, and sockpath saying why: a listener bound to the
//! destination address beats one bound to the wildcard; in a SO_REUSEPORT group the kernel picks
//! one member per connection. Each listener is its own process, so the owner sockpath names can
//! be checked against the process whose accept() returned the connection.
//!
//! On kernels with fexit or kretprobes the lookup itself is observed; on the tracepoint-only
//! kernel the listener is known from the SYN-ACK it sent. Both are checked as they apply.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde_json::Value;
use sockpath_tests::{free_port, stage_hook, Netns, Peer, Report, Watch};

fn peer_bin() -> std::path::PathBuf {
    std::env::var_os("SOCKPATH_TEST_PEER")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sockpath-test-peer").into())
}

/// The SYN journey of the connection from `client`.
fn syn_from(r: &Report, client: SocketAddr) -> &Value {
    let v: Vec<&Value> = r
        .with_flags(&["SYN"])
        .into_iter()
        .filter(|j| j["sport"] == client.port() && j["src"] == client.ip().to_string())
        .collect();
    assert_eq!(v.len(), 1, "one SYN from {client}\n{}", r.dump());
    v[0]
}

/// The lookup stage that names the listener: observed (fexit/kretprobe on the listener
/// lookup) or inferred (from the SYN-ACK) on kernels without those hooks.
fn lookup_stage(j: &Value) -> &Value {
    j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"] == "socket lookup" && s["detail"].as_str().unwrap_or("").contains(" LISTEN")
        })
        .unwrap_or_else(|| panic!("no lookup stage naming the listener in {j}"))
}

/// Checks the lookup stage is observed exactly when this kernel has a hook for it.
fn check_lookup_observed(r: &Report, j: &Value) {
    if sockpath_tests::expect_hooks() {
        assert!(
            stage_hook(&r.start, "socket lookup").is_some(),
            "{}",
            r.start
        );
    }
    let st = lookup_stage(j);
    match stage_hook(&r.start, "socket lookup") {
        Some(hook) => {
            let kind = st["hook"].as_str().unwrap();
            assert!(
                hook.starts_with(kind),
                "lookup served by {hook}, stage says {kind}"
            );
            assert!(st["offset_ns"].is_u64(), "observed lookup has a time");
        }
        None => assert_eq!(st["hook"], "inferred"),
    }
}

fn connect(ns: &Netns, to: &str) -> SocketAddr {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        let c = std::net::TcpStream::connect(to).unwrap();
        let local = c.local_addr().unwrap();
        drop(c);
        local
    })
}

fn wait_accepted(peers: &[&Peer], n: usize) {
    for _ in 0..100 {
        if peers.iter().map(|p| p.accepted().len()).sum::<usize>() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the peers did not accept {n} connections");
}

#[test]
fn specific_address_beats_the_wildcard() {
    let ns = Netns::new("spec");
    let port = free_port();
    let watch = Watch::start(&["--port", &port.to_string()]);
    let bin = peer_bin();
    // Both need SO_REUSEPORT to share the port across addresses while listening.
    let exact = Peer::listen(Path::new(&bin), &ns, &format!("127.0.0.1:{port}"), true);
    let wild = Peer::listen(Path::new(&bin), &ns, &format!("0.0.0.0:{port}"), true);
    let to_exact = connect(&ns, &format!("127.0.0.1:{port}"));
    let to_wild = connect(&ns, &format!("127.0.0.2:{port}"));
    wait_accepted(&[&exact, &wild], 2);
    let r = watch.stop();
    let dump = r.dump();

    // The kernel's answer, from the processes themselves.
    assert!(
        exact.accepted().iter().any(|(_, p)| *p == to_exact),
        "{dump}"
    );
    assert!(wild.accepted().iter().any(|(_, p)| *p == to_wild), "{dump}");

    let j = syn_from(&r, to_exact);
    assert_eq!(j["socket"]["local"], format!("127.0.0.1:{port}"), "{dump}");
    assert_eq!(j["socket"]["owner"]["pid"], exact.pid, "{dump}");
    assert_eq!(j["socket"]["owner"]["fd"], exact.fd);
    let why = lookup_stage(j)["detail"].as_str().unwrap();
    assert!(
        why.contains(&format!("beats the wildcard listener 0.0.0.0:{port}")),
        "{why}\n{dump}"
    );
    check_lookup_observed(&r, j);

    let j = syn_from(&r, to_wild);
    assert_eq!(j["socket"]["local"], format!("0.0.0.0:{port}"), "{dump}");
    assert_eq!(j["socket"]["owner"]["pid"], wild.pid, "{dump}");
    let why = lookup_stage(j)["detail"].as_str().unwrap();
    assert!(
        why.contains(&format!("127.0.0.1:{port}"))
            && why.contains("another address than 127.0.0.2"),
        "{why}\n{dump}"
    );
    check_lookup_observed(&r, j);
}

#[test]
fn reuseport_member_is_named_for_each_connection() {
    let ns = Netns::new("rport");
    let port = free_port();
    let watch = Watch::start(&["--port", &port.to_string()]);
    let bin = peer_bin();
    let a = Peer::listen(Path::new(&bin), &ns, &format!("127.0.0.1:{port}"), true);
    let b = Peer::listen(Path::new(&bin), &ns, &format!("127.0.0.1:{port}"), true);
    let clients: Vec<SocketAddr> = (0..12)
        .map(|_| connect(&ns, &format!("127.0.0.1:{port}")))
        .collect();
    wait_accepted(&[&a, &b], clients.len());
    let r = watch.stop();
    let dump = r.dump();

    let (acc_a, acc_b) = (a.accepted(), b.accepted());
    // With 12 connections both members get some (the hash spreads them; 2^-11 to miss one).
    assert!(
        !acc_a.is_empty() && !acc_b.is_empty(),
        "{acc_a:?} {acc_b:?}"
    );
    for c in &clients {
        let accepted_by = if acc_a.iter().any(|(_, p)| p == c) {
            &a
        } else if acc_b.iter().any(|(_, p)| p == c) {
            &b
        } else {
            panic!("nobody accepted {c}");
        };
        let j = syn_from(&r, *c);
        assert_eq!(
            j["socket"]["owner"]["pid"], accepted_by.pid,
            "sockpath names another member than the one whose accept() got {c}\n{dump}"
        );
        let why = lookup_stage(j)["detail"].as_str().unwrap();
        assert!(why.contains("SO_REUSEPORT group member"), "{why}");
        let other = if accepted_by.pid == a.pid { &b } else { &a };
        assert!(
            why.contains(&format!("[{}]", other.pid)),
            "the other member is named: {why}"
        );
        check_lookup_observed(&r, j);
    }
}
