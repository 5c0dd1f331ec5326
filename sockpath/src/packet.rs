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

    /// `tcp4`'s frame as an IPv4 fragment: `offset` in 8-byte units, more fragments to come.
    fn fragment4(offset: u16) -> Vec<u8> {
        let mut f = tcp4(4444, 4000, 1, Some(2), "AP", b"0123456789abcdef0123456789");
        f[20..22].copy_from_slice(&(0x2000 | offset).to_be_bytes());
        f
    }

    #[test]
    fn only_the_first_ipv4_fragment_has_ports() {
        let first = Headers::parse(0x0800, 14, &fragment4(0)).unwrap();
        assert_eq!((first.sport, first.dport), (Some(4444), Some(4000)));
        assert_eq!(first.payload_len, 26);
        // A later fragment begins with payload: what would be read as ports is not.
        let later = Headers::parse(0x0800, 14, &fragment4(185)).unwrap();
        assert_eq!(later.proto, IPPROTO_TCP);
        assert_eq!((later.sport, later.dport, later.tcp), (None, None, None));
        assert_eq!(
            later.payload_len,
            20 + 26,
            "all of the fragment's IP payload"
        );
        assert_eq!(later.ip_id, first.ip_id);
    }

    /// IPv6 `frame` with extension header `ext` of type `kind` after its IPv6 header (the
    /// extension's first byte, its next header, is filled in).
    fn with_ext6(frame: &[u8], kind: u8, mut ext: Vec<u8>) -> Vec<u8> {
        let (eth_ip, rest) = frame.split_at(14 + 40);
        let mut f = eth_ip.to_vec();
        ext[0] = f[14 + 6];
        f[14 + 6] = kind;
        let len = u16::from_be_bytes([f[18], f[19]]) + ext.len() as u16;
        f[18..20].copy_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&ext);
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ipv6_extension_headers_are_walked_to_the_transport() {
        let plain = udp6(5000, 4000, b"hello");
        // Hop-by-hop options (a PadN filling its 8 bytes).
        let hop = with_ext6(&plain, 0, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let h = Headers::parse(0x86dd, 14, &hop).unwrap();
        assert_eq!(h.proto, IPPROTO_UDP);
        assert_eq!((h.sport, h.dport), (Some(5000), Some(4000)));
        assert_eq!(h.payload_len, 5);
        assert_eq!(h, Headers::parse(0x86dd, 14, &plain).unwrap());
    }

    #[test]
    fn only_the_first_ipv6_fragment_has_ports() {
        let plain = udp6(5000, 4000, b"hello");
        let frag = |offset: u16| {
            let mut ext = vec![0, 0];
            ext.extend_from_slice(&((offset << 3) | 1).to_be_bytes());
            ext.extend_from_slice(&7u32.to_be_bytes());
            with_ext6(&plain, 44, ext)
        };
        let first = Headers::parse(0x86dd, 14, &frag(0)).unwrap();
        assert_eq!((first.proto, first.sport), (IPPROTO_UDP, Some(5000)));
        let later = Headers::parse(0x86dd, 14, &frag(100)).unwrap();
        assert_eq!(later.proto, IPPROTO_UDP);
        assert_eq!((later.sport, later.dport), (None, None));
        assert_eq!(later.payload_len, 8 + 5);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Headers::parse(0x0800, 14, &[0u8; 10]).is_err());
        assert!(Headers::parse(0x0806, 14, &[0u8; 60]).is_err());
        assert!(Headers::parse(0x0800, 100, &[0u8; 60]).is_err());
    }

    /// Every frame the kernel hands over is parsed: none may panic the parser. Valid frames
    /// (fragments and extension headers among them) with bytes changed and cut short.
    #[test]
    fn no_frame_panics_the_parser() {
        let seeds = [
            (0x0800, tcp4(4444, 4000, 1, Some(2), "AP", b"salam\n")),
            (0x0800, fragment4(0)),
            (0x0800, fragment4(185)),
            (0x0800, udp4(5000, 4000, b"x")),
            (0x86dd, udp6(5000, 4000, b"hi")),
            (
                0x86dd,
                with_ext6(&udp6(1, 2, b"x"), 0, vec![0, 0, 1, 4, 0, 0, 0, 0]),
            ),
            (
                0x86dd,
                with_ext6(&udp6(1, 2, b"x"), 44, vec![0, 0, 0, 9, 0, 0, 0, 7]),
            ),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..100_000 {
            let (ethertype, seed) = &seeds[i % seeds.len()];
            let mut f = seed.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % f.len() as u64) as usize;
                f[at] = next() as u8;
            }
            let len = (next() % (f.len() as u64 + 1)) as usize;
            let mac_len = if i % 16 == 0 {
                next() as usize % 64
            } else {
                14
            };
            let _ = Headers::parse(*ethertype, mac_len, &f[..len]);
            let _ = Headers::parse(*ethertype, mac_len, &f);
        }
    }
}
