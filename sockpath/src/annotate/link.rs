//! Where a captured frame's IP header starts, by the capture's link type, so the frame's headers
//! are parsed by the same code as the kernel's (`packet::Headers::parse`).

use pcap_file::DataLink;
use sockpath_ebpf::net::{ETH_P_IP as ETHERTYPE_IPV4, ETH_P_IPV6 as ETHERTYPE_IPV6};

use crate::packet::Headers;

const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// EtherType from the IP version nibble, for link types that carry bare IP.
fn by_version(data: &[u8], at: usize) -> Result<(u16, usize), String> {
    match data.get(at).map(|b| b >> 4) {
        Some(4) => Ok((ETHERTYPE_IPV4, at)),
        Some(6) => Ok((ETHERTYPE_IPV6, at)),
        Some(v) => Err(format!("not IPv4 or IPv6 (IP version {v})")),
        None => Err("frame shorter than its link-layer header".into()),
    }
}

/// The EtherType and offset of the network header.
fn network_header(linktype: DataLink, data: &[u8]) -> Result<(u16, usize), String> {
    let short = || "frame shorter than its link-layer header".to_string();
    match u32::from(linktype) {
        // Ethernet, with up to two VLAN tags. tcpdump on Linux loopback records this too.
        1 => {
            let mut at = 12;
            let mut ethertype = be16(data, at).ok_or_else(short)?;
            for _ in 0..2 {
                if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
                    break;
                }
                at += 4;
                ethertype = be16(data, at).ok_or_else(short)?;
            }
            Ok((ethertype, at + 2))
        }
        // Linux cooked capture v1 (tcpdump -i any before 4.99): protocol at 14, 16 bytes.
        113 => Ok((be16(data, 14).ok_or_else(short)?, 16)),
        // Linux cooked capture v2 (tcpdump -i any): protocol at 0, 20 bytes.
        276 => Ok((be16(data, 0).ok_or_else(short)?, 20)),
        // Raw IP (101, and DLT_RAW's 12 and 14 on some systems), IPv4 (228), IPv6 (229).
        101 | 12 | 14 | 228 | 229 => by_version(data, 0),
        // BSD loopback (NULL, LOOP): a 4-byte address family, then IP.
        0 | 108 => by_version(data, 4),
        other => Err(format!("link type {other} ({linktype:?}) is not supported")),
    }
}

/// The frame's IP and transport headers, or why there are none to match on.
pub fn headers(linktype: DataLink, data: &[u8]) -> Result<Headers, String> {
    let (ethertype, at) = network_header(linktype, data)?;
    Headers::parse(ethertype, at, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixture::{tcp4, udp6};

    #[test]
    fn ethernet_and_vlan() {
        let f = tcp4(4444, 4000, 7, None, "S", &[]);
        assert_eq!(headers(DataLink::ETHERNET, &f).unwrap().sport, Some(4444));
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(
            headers(DataLink::ETHERNET, &tagged).unwrap().dport,
            Some(4000)
        );
    }

    #[test]
    fn cooked_raw_and_null() {
        let f = udp6(5000, 4000, b"hi");
        let ip = &f[14..];
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(ip);
        assert_eq!(headers(DataLink::LINUX_SLL2, &sll2).unwrap().ip_version, 6);
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x86, 0xdd]);
        sll.extend_from_slice(ip);
        assert_eq!(
            headers(DataLink::LINUX_SLL, &sll).unwrap().dport,
            Some(4000)
        );
        assert_eq!(headers(DataLink::RAW, ip).unwrap().payload_len, 2);
        let mut null = vec![30, 0, 0, 0];
        null.extend_from_slice(ip);
        assert_eq!(headers(DataLink::NULL, &null).unwrap().sport, Some(5000));
    }

    #[test]
    fn arp_short_and_unknown_are_reasons_not_panics() {
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(headers(DataLink::ETHERNET, &arp)
            .unwrap_err()
            .contains("0x0806"));
        assert!(headers(DataLink::ETHERNET, &[0; 5]).is_err());
        assert!(headers(DataLink::IEEE802_11, &[0; 60])
            .unwrap_err()
            .contains("not supported"));
    }
}
