//! What makes a captured frame and a journey the same packet, apart from time: protocol,
//! addresses, ports, TCP flags, seq and ack, the IPv4 identification and the payload length.
//! A TCP segment is told from its retransmission by the IP id (Linux counts it per packet), a
//! UDP datagram over IPv4 by the IP id, over IPv6 only by time.

use std::net::IpAddr;

use crate::{
    journey::sockets::endpoint,
    packet::{proto_name, Headers},
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpKey {
    /// Flag names in Wireshark's order, comma-separated: "SYN,ACK".
    pub flags: String,
    pub seq: u32,
    pub ack: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PacketKey {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub tcp: Option<TcpKey>,
    pub ip_id: Option<u16>,
    pub payload_len: u32,
}

impl PacketKey {
    pub fn of_headers(h: &Headers) -> Self {
        Self {
            proto: h.proto,
            src: h.src,
            dst: h.dst,
            sport: h.sport,
            dport: h.dport,
            tcp: h.tcp.as_ref().map(|t| TcpKey {
                flags: t.flags.join(","),
                seq: t.seq,
                ack: t.ack,
            }),
            ip_id: h.ip_id,
            payload_len: h.payload_len,
        }
    }

    /// As a capture tool's summary line: `127.0.0.1:4444 → 127.0.0.1:4000 TCP [SYN] Seq=1 Len=0`.
    pub fn describe(&self) -> String {
        let (src, dst) = match self.sport.zip(self.dport) {
            Some((s, d)) => (endpoint(self.src, s), endpoint(self.dst, d)),
            None => (self.src.to_string(), self.dst.to_string()),
        };
        let mut s = format!("{src} → {dst} {}", proto_name(self.proto).to_uppercase());
        if let Some(t) = &self.tcp {
            s.push_str(&format!(" [{}] Seq={}", t.flags.replace(',', ", "), t.seq));
            if t.flags.split(',').any(|f| f == "ACK") {
                s.push_str(&format!(" Ack={}", t.ack));
            }
        }
        if let Some(id) = self.ip_id {
            s.push_str(&format!(" Id={id}"));
        }
        s.push_str(&format!(" Len={}", self.payload_len));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixture::tcp4;

    #[test]
    fn describes_like_a_capture_summary() {
        let h = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 5, Some(9), "AP", b"hi")).unwrap();
        let k = PacketKey::of_headers(&h);
        assert_eq!(
            k.describe(),
            format!(
                "127.0.0.1:4444 → 127.0.0.1:4000 TCP [ACK, PSH] Seq=5 Ack=9 Id={} Len=2",
                h.ip_id.unwrap()
            )
        );
    }
}
