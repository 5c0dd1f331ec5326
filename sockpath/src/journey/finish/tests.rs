//! Which finished journeys a filter by owner keeps.

use super::owners_of;
use crate::{
    filter::{OwnerFilter, WatchFilter},
    journey::model::{
        Hex, Journey, Outcome, OutcomeData, OutcomeKind, Owner, SocketView, Timestamp,
    },
};

fn matches(f: &WatchFilter, j: &Journey, related: &[Owner]) -> bool {
    f.any_owner_matches(owners_of(j, related))
}

fn journey(owner: Option<(u32, &str)>, reader: Option<(u32, &str)>) -> Journey {
    let mut outcome = Outcome::new(OutcomeKind::Read, OutcomeData::Read { payload: 6 });
    if let Some((pid, comm)) = reader {
        outcome.pid = Some(pid);
        outcome.comm = Some(comm.into());
    }
    Journey {
        id: 1,
        kernel_id: 1,
        ts_ns: 0,
        ts: Timestamp(0),
        cpu: 0,
        iface: "lo".into(),
        ifindex: 1,
        netns: 0,
        wire_len: 60,
        headers: None,
        stages: Vec::new(),
        socket: Some(SocketView {
            proto: "tcp",
            local: "127.0.0.1:4000".into(),
            remote: "127.0.0.1:51000".into(),
            state: "ESTABLISHED",
            sk: Hex(1),
            ino: 1,
            netns: 0,
            owner: owner.map(|(pid, comm)| Owner {
                pid,
                comm: comm.into(),
                fd: 3,
            }),
        }),
        state_changes: Vec::new(),
        outcome,
        complete: true,
        incomplete_reason: None,
        sampled_one_in: None,
        sampled_out: false,
        frame: Vec::new(),
        mac_len: 14,
    }
}

#[test]
fn journeys_belong_to_the_socket_holder_or_the_reader() {
    let f = WatchFilter {
        owners: OwnerFilter {
            pids: [100].into(),
            comms: ["nginx".to_string()].into(),
        },
        ..Default::default()
    };
    assert!(matches(&f, &journey(Some((100, "server")), None), &[]));
    assert!(matches(&f, &journey(Some((555, "nginx")), None), &[]));
    assert!(!matches(&f, &journey(Some((200, "other")), None), &[]));
    // Still in the accept queue: no holder, but the process that accepted it.
    assert!(matches(&f, &journey(None, Some((100, "server"))), &[]));
    assert!(!matches(&f, &journey(None, Some((200, "other"))), &[]));
    assert!(!matches(&f, &journey(None, None), &[]));
    assert!(matches(&WatchFilter::default(), &journey(None, None), &[]));
    // A connection in A's listener's accept queue, or a socket A closed: A's, by the holders the
    // assembler found.
    let listener = Owner {
        pid: 100,
        comm: "server".into(),
        fd: 3,
    };
    assert!(matches(&f, &journey(None, None), &[listener]));
    let other = Owner {
        pid: 200,
        comm: "other".into(),
        fd: 3,
    };
    assert!(!matches(&f, &journey(None, None), &[other]));
}
