//! A stage's detail: what it saw, in words.

use std::fmt::Write;

use serde::{Serialize, Serializer};
use sockpath_ebpf::event::Hop;

use super::{addr, caller, failed_read, lookup, process, sock, syscall_result, R};
use crate::{
    journey::model::{ConsumedWhy, Queue, RouteResult, StageData},
    kernel::names::DROP_REASON_NOT_GIVEN,
    text::{int, uint},
};

/// What the function a hop is named after does with the packet.
fn hop(h: Hop) -> &'static str {
    match h {
        Hop::IpRcv => "IPv4 receive: header checks",
        Hop::Ipv6Rcv => "IPv6 receive: header checks",
        Hop::IpLocalDeliver | Hop::Ip6Input => "the route says local: on to the transport",
        Hop::TcpV4Rcv | Hop::TcpV6Rcv => "TCP receive",
        Hop::UdpRcv | Hop::Udpv6Rcv => "UDP receive",
    }
}

/// Routing tables by the names `ip route` gives them.
fn table<W: Write + ?Sized>(w: &mut W, t: u32) -> R {
    match t {
        255 => w.write_str("local"),
        254 => w.write_str("main"),
        n => w.write_str(uint(n).as_str()),
    }
}

pub fn write<W: Write + ?Sized>(w: &mut W, d: &StageData) -> R {
    match d {
        StageData::Device {
            ifname,
            ifindex,
            wire_len,
        } => {
            w.write_str("dev ")?;
            w.write_str(ifname)?;
            w.write_str(" (ifindex ")?;
            w.write_str(uint(*ifindex).as_str())?;
            w.write_str("), ")?;
            w.write_str(uint(*wire_len).as_str())?;
            w.write_str(" bytes")
        }
        StageData::Route {
            src,
            dst,
            table: t,
            result,
        } => {
            write!(w, "input route {src} -> {dst}: table ")?;
            table(w, *t)?;
            match result {
                RouteResult::Device(dev) => write!(w, " -> dev {dev}"),
                RouteResult::NoRoute { err } => write!(w, " no route (err {err})"),
            }
        }
        StageData::Hop { hop: h, ip_ns } => {
            w.write_str(hop(*h))?;
            match ip_ns {
                Some(ns) => write!(w, " ({:.1}µs in IP)", *ns as f64 / 1e3),
                None => Ok(()),
            }
        }
        StageData::Lookup(l) => lookup::write(w, l),
        StageData::EstablishedReceive { socket } => {
            w.write_str("on ")?;
            sock(w, socket)
        }
        StageData::SynAck {
            listener,
            local,
            remote,
        } => {
            w.write_str("by listener ")?;
            sock(w, listener)?;
            w.write_str("; request socket ")?;
            addr(w, *local)?;
            w.write_str(" <- ")?;
            addr(w, *remote)
        }
        StageData::StateChange { socket, change } => {
            w.write_str(change.from)?;
            w.write_str(" -> ")?;
            w.write_str(change.to)?;
            w.write_str(" on ")?;
            w.write_str(&socket.local)?;
            w.write_str(" <- ")?;
            w.write_str(&socket.remote)?;
            if change.time_wait {
                w.write_str(" (continues as a TIME_WAIT socket)")?;
            } else if change.fin_wait2 {
                w.write_str(" (continues as a time-wait socket in FIN_WAIT2)")?;
            }
            Ok(())
        }
        StageData::Queued {
            socket,
            queue: Queue::Accept,
        } => {
            w.write_str("connection queued on the accept queue of ")?;
            sock(w, socket)?;
            w.write_str("; accept() woken")
        }
        StageData::Queued {
            socket,
            queue: Queue::Receive,
        } => {
            w.write_str("queued on ")?;
            sock(w, socket)?;
            w.write_str("; reader woken")
        }
        StageData::ResetReceived => w.write_str("RST accepted: connection reset"),
        StageData::ErrorReported { errno } => {
            w.write_str(errno)?;
            w.write_str(" reported to the socket's user")
        }
        StageData::ResetSent { by_socket, reason } => {
            w.write_str(if *by_socket {
                "RST sent by the socket"
            } else {
                "RST sent, no socket"
            })?;
            match reason {
                Some(r) => write!(w, " (reason {r})"),
                None => Ok(()),
            }
        }
        StageData::IcmpSent { icmp } => {
            w.write_str(icmp)?;
            w.write_str(" sent")
        }
        StageData::Dropped { reason, location } if reason == DROP_REASON_NOT_GIVEN => {
            write!(w, "dropped at {location}, {reason}")
        }
        StageData::Dropped { reason, location } => {
            write!(w, "dropped: {reason} at {location}")
        }
        StageData::Answered { flags, time_wait } => {
            w.write_str(&flags.join(","))?;
            match time_wait {
                Some(sub) => write!(w, " sent by the time-wait socket ({sub})"),
                None => w.write_str(" sent by TCP's control socket (no full socket)"),
            }
        }
        StageData::SynCookieSent => w.write_str(
            "SYN-ACK with a SYN cookie sent, from no socket: the listener kept no request socket",
        ),
        StageData::Consumed { location, why } => {
            w.write_str("consumed")?;
            if let Some(l) = location {
                write!(w, " at {l}")?;
            }
            if let Some(why) = why {
                w.write_str(": ")?;
                consumed_why(w, *why)?;
            }
            Ok(())
        }
        StageData::QueueFull { rc } => {
            write!(w, "socket could not queue it (rc {rc})")
        }
        StageData::Read { bytes, reader } => {
            w.write_str(uint(*bytes).as_str())?;
            w.write_str(" bytes read by ")?;
            caller(w, reader)
        }
        StageData::EndOfFile { reader } => {
            w.write_str("end of file read by ")?;
            caller(w, reader)?;
            w.write_str(" = 0")
        }
        StageData::ReadFailed { reader, errno } => failed_read(
            w,
            &reader.comm,
            reader.pid,
            reader.syscall,
            reader.fd,
            errno,
        ),
        StageData::ClosedAfterReset { comm, pid } => {
            w.write_str("closed by ")?;
            process(w, comm, *pid)?;
            w.write_str(" without a read after the reset: the error went unread")
        }
        StageData::Accepted { caller: c } => {
            w.write_str(c.syscall.unwrap_or("accept"))?;
            w.write_str("() = ")?;
            w.write_str(int(c.fd.unwrap_or(-1)).as_str())?;
            w.write_str(" in ")?;
            process(w, &c.comm, c.pid)
        }
        StageData::ConnectReturned { caller: c, ret } => {
            w.write_str("connect(")?;
            w.write_str(int(c.fd.unwrap_or(-1)).as_str())?;
            w.write_str(") = ")?;
            syscall_result(w, *ret)?;
            w.write_str(" in ")?;
            process(w, &c.comm, c.pid)
        }
        StageData::InferredIp {
            dropped: Some(reason),
        } => write!(w, "dropped here ({reason})"),
        StageData::InferredIp { dropped: None } => w.write_str("headers valid, local destination"),
        StageData::InferredTransport => Ok(()),
        StageData::EarlyDemux => w.write_str(
            "socket found in IP receive (early demux); route from the socket's cache, no FIB lookup",
        ),
        StageData::Logged(words) => w.write_str(words),
    }
}

/// Why a consumed packet was freed, in words.
pub fn consumed_why<W: Write + ?Sized>(w: &mut W, why: ConsumedWhy) -> R {
    w.write_str(match why {
        ConsumedWhy::PureAck => "a pure ACK, processed",
        ConsumedWhy::SynAnswered => "the SYN, answered",
        ConsumedWhy::Read => "its payload, read",
        ConsumedWhy::Processed => "processed by the established socket",
    })
}

/// JSON's `detail`: the words.
impl Serialize for StageData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Words(self))
    }
}

/// The words, for serde: written through its string escaper.
struct Words<'a>(&'a StageData);

impl std::fmt::Display for Words<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> R {
        write(f, self.0)
    }
}
