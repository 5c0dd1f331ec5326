use super::EventHeader;

/// An IPv4 route lookup (`fib_table_lookup`) for a watched flow: the kernel's routing decision.
///
/// Loopback packets keep the route they were sent with, so this fires on veth and real devices,
/// not on `lo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FibEvent {
    pub header: EventHeader,
    pub table: u32,
    pub err: i32,
    pub oif: i32,
    pub iif: i32,
    pub proto: u8,
    pub scope: u8,
    pub flags: u8,
    pub tos: u8,
    /// Source and destination ports of the flow looked up, host byte order.
    pub sport: u16,
    pub dport: u16,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub gw4: [u8; 4],
    pub _pad: u32,
    /// Device the route points to.
    pub dev: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<FibEvent>() == 88);
