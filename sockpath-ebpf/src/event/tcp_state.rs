/// The error tcp_reset() reports to the user of a socket in `state` when a RST arrives, as
/// kernels before 5.14 set it right after their tcp_receive_reset tracepoint (later ones trace
/// the report itself, inet_sk_error_report): SYN_SENT gets ECONNREFUSED, CLOSE_WAIT EPIPE, a
/// closed socket nothing, any other ECONNRESET.
pub const fn reset_error(state: u8) -> Option<i32> {
    const ECONNREFUSED: i32 = 111;
    const EPIPE: i32 = 32;
    const ECONNRESET: i32 = 104;
    match state {
        2 => Some(ECONNREFUSED),
        8 => Some(EPIPE),
        7 => None,
        _ => Some(ECONNRESET),
    }
}

/// A TCP socket's state, as `sk->sk_state` holds it (include/net/tcp_states.h). UDP sockets use
/// two of these values too: CLOSE while unconnected, ESTABLISHED once connected.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// A request socket (a SYN answered, the third ACK not yet come); since Linux 4.4.
    NewSynRecv = 12,
}

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait1,
        Self::FinWait2,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::Closing,
        Self::NewSynRecv,
    ];

    /// The state of a kernel state number; None for numbers no socket takes (0, or the
    /// inet_diag-only pseudo-states after NEW_SYN_RECV).
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            _ => return None,
        })
    }

    /// The name `ss` and the kernel's tracepoints print, without the `TCP_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_reports_the_error_tcp_reset_sets_for_the_state() {
        assert_eq!(reset_error(TcpState::SynSent as u8), Some(111)); // ECONNREFUSED
        assert_eq!(reset_error(TcpState::CloseWait as u8), Some(32)); // EPIPE
        assert_eq!(reset_error(TcpState::Close as u8), None);
        for s in [
            TcpState::Established,
            TcpState::FinWait1,
            TcpState::FinWait2,
            TcpState::LastAck,
            TcpState::Closing,
        ] {
            assert_eq!(reset_error(s as u8), Some(104), "{s:?}"); // ECONNRESET
        }
    }
}
