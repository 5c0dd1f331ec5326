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
