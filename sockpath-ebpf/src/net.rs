//! Address families, protocol numbers and the one address form both sides compare addresses in.

/// `sa_family` / `skc_family` of an IPv4 socket.
pub const AF_INET: u16 = 2;
/// `sa_family` / `skc_family` of an IPv6 socket (which may also carry IPv4, v4-mapped).
pub const AF_INET6: u16 = 10;

/// Link-layer protocols (skb->protocol, host order).
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// IP protocol numbers (the IPv4 protocol field, the IPv6 next header, sk->sk_protocol).
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// An address as the filter compares it: IPv6, with IPv4 addresses in their v4-mapped form
/// (::ffff:a.b.c.d), which is also how a dual-stack AF_INET6 socket holds an IPv4 peer. One form
/// makes 127.0.0.1 the same key whether it comes from an IPv4 packet, an AF_INET socket or an
/// AF_INET6 socket that accepted an IPv4 connection.
pub type AddrKey = [u8; 16];

/// The v4-mapped form of an IPv4 address.
#[inline(always)]
pub fn v4_mapped(a: &[u8]) -> AddrKey {
    let mut k = [0u8; 16];
    k[10] = 0xff;
    k[11] = 0xff;
    k[12] = a[0];
    k[13] = a[1];
    k[14] = a[2];
    k[15] = a[3];
    k
}

/// Whether `k` is an IPv4 address in v4-mapped form.
#[inline(always)]
pub fn is_v4_mapped(k: &AddrKey) -> bool {
    let mut i = 0;
    while i < 10 {
        if k[i] != 0 {
            return false;
        }
        i += 1;
    }
    k[10] == 0xff && k[11] == 0xff
}

/// Whether all 16 bytes are zero (the IPv6 unspecified address `::`).
#[inline(always)]
pub fn is_zero(a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 16 {
        if a[i] != 0 {
            return false;
        }
        i += 1;
    }
    true
}
