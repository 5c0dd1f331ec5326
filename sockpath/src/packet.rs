//! What a packet's headers say, as a capture tool would show them: addresses, ports, TCP flags,
//! sequence numbers, window, payload length. Parsed with etherparse from the captured bytes.

use std::net::IpAddr;

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice, UdpHeaderSlice};
use serde::Serialize;

use sockpath_ebpf::net::{ETH_P_IP, ETH_P_IPV6};
pub use sockpath_ebpf::net::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcpInfo {
    /// Flag names in Wireshark's order: SYN, ACK, FIN, RST, PSH, URG, ECE, CWR.
    pub flags: Vec<&'static str>,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
}

/// A received packet's headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Headers {
    pub ip_version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol: "tcp", "udp", "icmp", ... in JSON.
    #[serde(serialize_with = "proto_as_name")]
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// TCP flags, seq, ack, window (absent for other protocols).
    #[serde(flatten)]
    pub tcp: Option<TcpInfo>,
    /// Transport payload bytes, from the IP length fields (not limited by the snap length).
    pub payload_len: u32,
    /// IPv4 identification (what a capture matcher uses for UDP).
    pub ip_id: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not IPv4 or IPv6 (EtherType {0:#06x})")]
    NotIp(u16),
    #[error("truncated or malformed {0} header")]
    Malformed(&'static str),
}

impl Headers {
    /// Parses the network and transport headers of a frame whose network header starts at
    /// `mac_len`.
    pub fn parse(ethertype: u16, mac_len: usize, frame: &[u8]) -> Result<Self, ParseError> {
        let nh = frame.get(mac_len..).ok_or(ParseError::Malformed("link"))?;
        let (ip_version, src, dst, proto, l4, ip_payload_len, ip_id) = match ethertype {
            ETH_P_IP => {
                let ip =
                    Ipv4HeaderSlice::from_slice(nh).map_err(|_| ParseError::Malformed("IPv4"))?;
                let hl = ip.ihl() as usize * 4;
                let total = ip.total_len() as usize;
                (
                    4,
                    IpAddr::V4(ip.source_addr()),
                    IpAddr::V4(ip.destination_addr()),
                    ip.protocol().0,
                    &nh[hl.min(nh.len())..],
                    total.saturating_sub(hl),
                    Some(ip.identification()),
                )
            }
            ETH_P_IPV6 => {
                let ip =
                    Ipv6HeaderSlice::from_slice(nh).map_err(|_| ParseError::Malformed("IPv6"))?;
                (
                    6,
                    IpAddr::V6(ip.source_addr()),
                    IpAddr::V6(ip.destination_addr()),
                    ip.next_header().0,
                    &nh[40.min(nh.len())..],
                    ip.payload_length() as usize,
                    None,
                )
            }
            other => return Err(ParseError::NotIp(other)),
        };
        let mut h = Headers {
            ip_version,
            src,
            dst,
            proto,
            sport: None,
            dport: None,
            tcp: None,
            payload_len: ip_payload_len as u32,
            ip_id,
        };
        match proto {
            IPPROTO_TCP => {
                let t = TcpHeaderSlice::from_slice(l4).map_err(|_| ParseError::Malformed("TCP"))?;
                h.sport = Some(t.source_port());
                h.dport = Some(t.destination_port());
                h.payload_len = ip_payload_len.saturating_sub(t.data_offset() as usize * 4) as u32;
                let mut flags = Vec::new();
                for (on, name) in [
                    (t.syn(), "SYN"),
                    (t.ack(), "ACK"),
                    (t.fin(), "FIN"),
                    (t.rst(), "RST"),
                    (t.psh(), "PSH"),
                    (t.urg(), "URG"),
                    (t.ece(), "ECE"),
                    (t.cwr(), "CWR"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                h.tcp = Some(TcpInfo {
                    flags,
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    window: t.window_size(),
                });
            }
            IPPROTO_UDP => {
                let u = UdpHeaderSlice::from_slice(l4).map_err(|_| ParseError::Malformed("UDP"))?;
                h.sport = Some(u.source_port());
                h.dport = Some(u.destination_port());
                h.payload_len = ip_payload_len.saturating_sub(8) as u32;
            }
            _ => {}
        }
        Ok(h)
    }

    pub fn proto_name(&self) -> String {
        proto_name(self.proto)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.flags.contains(&flag))
    }
}

fn proto_as_name<S: serde::Serializer>(p: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&proto_name(*p))
}

/// The protocol's name for the protocols sockpath follows.
pub fn proto_str(proto: u8) -> &'static str {
    match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        IPPROTO_ICMPV6 => "icmpv6",
        _ => "other",
    }
}

pub fn proto_name(proto: u8) -> String {
    match proto {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "icmpv6".into(),
        n => format!("ip-proto-{n}"),
    }
}

/// Test frames built with etherparse's packet builder.
#[cfg(test)]
pub mod fixture {
    use etherparse::PacketBuilder;

    pub fn tcp4(
        sport: u16,
        dport: u16,
        seq: u32,
        ack: Option<u32>,
        flags: &str,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(sport, dport, seq, 65495);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if flags.contains('P') {
            b = b.psh();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    pub fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    pub fn udp6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lo = [0u8; 16];
        lo[15] = 1;
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv6(lo, lo, 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{fixture::*, *};

    #[test]
    fn tcp_syn_with_flags_and_seq() {
        let f = tcp4(4444, 4000, 1000, None, "S", &[]);
        let h = Headers::parse(0x0800, 14, &f).unwrap();
        assert_eq!(h.sport, Some(4444));
        assert_eq!(h.dport, Some(4000));
        let t = h.tcp.as_ref().unwrap();
        assert_eq!(t.flags, vec!["SYN"]);
        assert_eq!(t.seq, 1000);
        assert_eq!(h.payload_len, 0);
    }

    #[test]
    fn tcp_payload_length_comes_from_ip_length_not_capture() {
        let mut f = tcp4(4444, 4000, 1, Some(2), "AP", b"salam\n");
        let h = Headers::parse(0x0800, 14, &f).unwrap();
        assert_eq!(h.payload_len, 6);
        assert_eq!(h.tcp.unwrap().flags, vec!["ACK", "PSH"]);
        // Truncated at the end of the headers (a short snap length): same length.
        f.truncate(14 + 20 + 20);
        assert_eq!(Headers::parse(0x0800, 14, &f).unwrap().payload_len, 6);
    }

    #[test]
    fn udp6_addresses() {
        let f = udp6(5000, 4000, b"hi");
        let h = Headers::parse(0x86dd, 14, &f).unwrap();
        assert_eq!(h.ip_version, 6);
        assert_eq!(h.src.to_string(), "::1");
        assert_eq!(h.payload_len, 2);
        assert_eq!(h.proto_name(), "udp");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Headers::parse(0x0800, 14, &[0u8; 10]).is_err());
        assert!(Headers::parse(0x0806, 14, &[0u8; 60]).is_err());
        assert!(Headers::parse(0x0800, 100, &[0u8; 60]).is_err());
    }
}
