//! Every kind of stage and outcome, with its words: the assembler's scenarios (the golden files)
//! do not make all of them.

mod outcomes;
mod stages;

use std::{net::SocketAddr, sync::Arc};

pub use self::{outcomes::every_outcome, stages::every_stage};
use crate::journey::model::{Caller, Hex, Owner, SocketView, Transition};

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn view(
    local: &str,
    remote: &str,
    state: &'static str,
    owner: Option<(&str, u32, i32)>,
) -> SocketView {
    SocketView {
        proto: "tcp",
        local: Arc::from(local),
        remote: Arc::from(remote),
        state,
        sk: Hex(0xffff_8880_0000_1000),
        ino: 7,
        netns: 1,
        owner: owner.map(|(comm, pid, fd)| Owner {
            pid,
            comm: Arc::from(comm),
            fd,
        }),
    }
}

pub fn listener() -> SocketView {
    view(
        "127.0.0.1:4000",
        "0.0.0.0:0",
        "LISTEN",
        Some(("server", 100, 3)),
    )
}

pub fn caller(comm: &str, syscall: Option<&'static str>, fd: Option<i32>) -> Caller {
    Caller {
        comm: comm.into(),
        pid: 100,
        syscall,
        fd,
    }
}

pub fn change(from: &'static str, to: &'static str, time_wait: bool) -> Transition {
    Transition {
        from,
        to,
        time_wait,
        fin_wait2: false,
    }
}

#[test]
fn every_stage_is_told_in_its_words() {
    for (data, words) in every_stage() {
        let mut s = String::new();
        super::stage::write(&mut s, &data).unwrap();
        assert_eq!(s, words, "{data:?}");
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            serde_json::to_string(words).unwrap()
        );
    }
}

#[test]
fn every_outcome_is_told_in_its_words() {
    for (o, words) in every_outcome() {
        assert_eq!(o.text(), words, "{o:?}");
    }
}
