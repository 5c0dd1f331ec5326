//! Stopping: Ctrl-C and SIGTERM detach everything and print the summary with exit 0; after
//! kill -9 the kernel detaches the programs itself. Lost events are counted and shown.

use std::{net::UdpSocket, time::Duration};

use sockpath_tests::{free_port, sockpath_programs_loaded, Netns, Watch};

fn wait_detached() -> usize {
    for _ in 0..50 {
        if sockpath_programs_loaded() == 0 {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sockpath_programs_loaded()
}

#[test]
fn sigterm_and_sigint_print_the_summary_and_detach() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let port = free_port();
        let w = Watch::start(&["--port", &port.to_string()]);
        assert!(
            sockpath_programs_loaded() > 0,
            "programs attached while running"
        );
        let r = w.stop_with(sig);
        assert_eq!(r.exit_code, Some(0), "signal {sig}: {}", r.stderr);
        assert_eq!(r.summary["type"], "summary", "signal {sig}: no summary");
        assert_eq!(
            wait_detached(),
            0,
            "programs left attached after signal {sig}"
        );
    }
}

#[test]
fn kill_9_leaves_nothing_attached() {
    let port = free_port();
    let w = Watch::start(&["--port", &port.to_string()]);
    assert!(sockpath_programs_loaded() > 0);
    w.signal(libc::SIGKILL);
    drop(w);
    assert_eq!(wait_detached(), 0, "programs left attached after kill -9");
}

#[test]
fn lost_events_are_counted_shown_and_mark_journeys_incomplete() {
    let ns = Netns::new("lost");
    let port = free_port();
    // A small ring buffer, and sockpath stopped while traffic flows: the kernel cannot write.
    let w = Watch::start(&["--port", &port.to_string(), "--ring-kib", "16"]);
    w.signal(libc::SIGSTOP);
    let sent = ns.run(move || {
        let rx = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..500 {
            tx.send_to(b"flood", ("127.0.0.1", port)).unwrap();
        }
        drop(rx);
        500
    });
    w.signal(libc::SIGCONT);
    let r = w.stop();
    let dump = r.dump();
    let lost = r.summary["events_lost"].as_u64().unwrap();
    assert!(
        lost > 0,
        "nothing lost with a 16 KiB ring and {sent} packets\n{dump}"
    );
    assert!(
        r.notes.iter().any(|n| n["kind"] == "lost"),
        "losses not shown live\n{dump}"
    );
    assert!(r.summary["incomplete"].as_u64().unwrap() > 0, "{dump}");
    // What the kernel matched is either a journey or behind the lost count.
    let matched = r.summary["packets_matched"].as_u64().unwrap();
    assert_eq!(matched, sent);
    assert!(r.journeys.len() as u64 <= matched);
    assert!(r
        .journeys
        .iter()
        .filter(|j| j["complete"] == false)
        .all(|j| !j["incomplete_reason"].is_null()));
}
