//! What a packet's headers say, as a capture tool would show them: addresses, ports, TCP flags,
//! sequence numbers, window, payload length. Parsed with etherparse from the captured bytes.

use std::net::IpAddr;

use etherparse::{
    ip_number, IpNumber, Ipv6ExtensionsSlice, LaxIpv4Slice, LaxIpv6Slice, TcpSlice, UdpHeader,
    UdpSlice,
};
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
    /// `mac_len`. IPv6 extension headers are walked to the transport header. A fragment other
    /// than the first carries no transport header: it has no ports (its first bytes are
    /// payload, not a TCP or UDP header).
    pub fn parse(ethertype: u16, mac_len: usize, frame: &[u8]) -> Result<Self, ParseError> {
        let nh = frame.get(mac_len..).ok_or(ParseError::Malformed("link"))?;
        // The network layer with its extension headers, as etherparse slices it. The transport
        // header is sliced below: etherparse slices none out of any fragment, and a first
        // fragment begins with it all the same (the kernel's filter matched its ports).
        let (ip, proto) = match ethertype {
            ETH_P_IP => {
                let (ip, _) =
                    LaxIpv4Slice::from_slice(nh).map_err(|_| ParseError::Malformed("IPv4"))?;
                (ipv4(&ip), ip.payload_ip_number())
            }
            ETH_P_IPV6 => {
                let (ip, _) =
                    LaxIpv6Slice::from_slice(nh).map_err(|_| ParseError::Malformed("IPv6"))?;
                (ipv6(&ip), ip.payload().ip_number)
            }
            other => return Err(ParseError::NotIp(other)),
        };
        let proto = proto.0;
        let mut h = Headers {
            ip_version: ip.version,
            src: ip.src,
            dst: ip.dst,
            proto,
            sport: None,
            dport: None,
            tcp: None,
            payload_len: ip.payload_len as u32,
            ip_id: ip.id,
        };
        if !ip.first_fragment {
            return Ok(h);
        }
        // From the captured bytes, not only those the IP length fields cover: a header the
        // length fields cut short is still shown as it came.
        let l4 = nh.get(ip.header_len..).unwrap_or_default();
        match proto {
            IPPROTO_TCP => {
                let t = TcpSlice::from_slice(l4).map_err(|_| ParseError::Malformed("TCP"))?;
                h.sport = Some(t.source_port());
                h.dport = Some(t.destination_port());
                h.payload_len = ip.payload_len.saturating_sub(t.header_len()) as u32;
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
                let u = UdpSlice::from_slice_lax(l4).map_err(|_| ParseError::Malformed("UDP"))?;
                h.sport = Some(u.source_port());
                h.dport = Some(u.destination_port());
                h.payload_len = ip.payload_len.saturating_sub(UdpHeader::LEN) as u32;
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

/// What the network layer says, IPv4 or IPv6.
struct Ip {
    version: u8,
    src: IpAddr,
    dst: IpAddr,
    /// Bytes of the IP header and its extension headers.
    header_len: usize,
    /// Bytes after the IP header and its extension headers, from the length fields (not limited
    /// by the snap length).
    payload_len: usize,
    id: Option<u16>,
    /// The payload begins with the transport header: not a fragment, or the first one.
    first_fragment: bool,
}

fn ipv4(ip: &LaxIpv4Slice) -> Ip {
    let h = ip.header();
    let exts = ip.extensions().auth.map_or(0, |a| a.slice().len());
    Ip {
        version: 4,
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        header_len: h.slice().len() + exts,
        payload_len: usize::from(h.total_len()).saturating_sub(h.slice().len() + exts),
        id: Some(h.identification()),
        first_fragment: h.fragments_offset().value() == 0,
    }
}

fn ipv6(ip: &LaxIpv6Slice) -> Ip {
    let h = ip.header();
    let exts = ip.extensions();
    Ip {
        version: 6,
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        header_len: h.slice().len() + exts.slice().len(),
        payload_len: usize::from(h.payload_length()).saturating_sub(exts.slice().len()),
        id: None,
        first_fragment: ipv6_first_fragment(exts),
    }
}

/// Whether no fragment header among IPv6 extension headers `exts` has an offset: the payload
/// after them begins with the transport header. Walked here with every length checked:
/// etherparse's iterator over the headers reads past their end when its lax parse stopped at a
/// header cut short (etherparse 0.21).
fn ipv6_first_fragment(exts: &Ipv6ExtensionsSlice) -> bool {
    let Some(mut kind) = exts.first_header() else {
        return true;
    };
    let mut rest = exts.slice();
    while let (Some(&next), Some(&len)) = (rest.first(), rest.get(1)) {
        let len = match kind {
            ip_number::IPV6_FRAG => {
                let Some(&[hi, lo]) = rest.get(2..4) else {
                    return false;
                };
                if u16::from_be_bytes([hi, lo]) >> 3 != 0 {
                    return false;
                }
                8
            }
            // In 4-octet units less 2 (RFC 4302), the others in 8-octet units less 1.
            ip_number::AUTH => (usize::from(len) + 2) * 4,
            _ => (usize::from(len) + 1) * 8,
        };
        rest = rest.get(len..).unwrap_or_default();
        kind = IpNumber(next);
    }
    true
}

fn proto_as_name<S: serde::Serializer>(p: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&proto_name(*p))
}

/// The protocol's name for the protocols sockpath follows.
/// The names of the TCP flags set in a header's flags byte, in the order captures show them.
pub fn tcp_flag_names(byte: u8) -> Vec<&'static str> {
    [
        (0x02, "SYN"),
        (0x10, "ACK"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x20, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ]
    .into_iter()
    .filter(|(bit, _)| byte & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

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

#[cfg(test)]
pub mod fixture;
#[cfg(test)]
mod tests;
