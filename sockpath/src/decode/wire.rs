//! Reading the kernel's `#[repr(C)]` records out of ring-buffer bytes: only types marked
//! [`Wire`] are read, and only from as many bytes as they need.

use std::mem::{size_of, MaybeUninit};

use sockpath_ebpf::event::{
    EventHeader, EventKind, FibEvent, PacketEvent, SkbEvent, SockEvent, SyscallEvent,
};

use super::DecodeError;

/// A type the kernel writes into the ring buffer, read back by copying its bytes.
///
/// # Safety
///
/// Implement only for `#[repr(C)]` types made of integers and arrays of integers (recursively,
/// through other `Wire` types), with no implicit padding: then every byte pattern of the type's
/// size is a valid value, and every byte of a value is initialised (fixtures view them).
pub unsafe trait Wire: Copy + 'static {}

// SAFETY: the event types are `#[repr(C)]`, their fields are integers, integer arrays and the
// header / SockInfo / CallInfo / SockAddrRaw structs of the same kind; their padding is spelled
// out as `_pad` fields and their sizes are asserted where they are defined (sockpath-ebpf's
// `event` module). Enums travel as integers and are converted after the read.
unsafe impl Wire for EventHeader {}
// SAFETY: as above.
unsafe impl Wire for PacketEvent {}
// SAFETY: as above.
unsafe impl Wire for SockEvent {}
// SAFETY: as above.
unsafe impl Wire for SkbEvent {}
// SAFETY: as above.
unsafe impl Wire for FibEvent {}
// SAFETY: as above.
unsafe impl Wire for SyscallEvent {}

/// A `T` from the first `size_of::<T>()` bytes of `bytes`; None when there are fewer.
pub fn read<T: Wire>(bytes: &[u8]) -> Option<T> {
    let bytes = bytes.get(..size_of::<T>())?;
    // SAFETY: `bytes` holds exactly size_of::<T>() bytes (the `get` above), `T: Wire` is valid
    // for any bytes, and read_unaligned does not need the ring buffer's 8-byte alignment to
    // suit T.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A `T` whose leading bytes are `bytes` and the rest zero, for records the kernel sends only
/// part of; None when `bytes` is longer than a `T`.
pub fn read_prefix<T: Wire>(bytes: &[u8]) -> Option<T> {
    if bytes.len() > size_of::<T>() {
        return None;
    }
    let mut v = MaybeUninit::<T>::zeroed();
    // SAFETY: `bytes.len() <= size_of::<T>()` (checked above), so the copy stays inside `v`;
    // the source and `v` do not overlap; all-zero and any copied bytes are a valid `T: Wire`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        Some(v.assume_init())
    }
}

/// A `T` that is the whole of `bytes`, or the error naming the size it should have had.
pub fn exact<T: Wire>(kind: EventKind, bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    let body_size = DecodeError::BodySize {
        kind,
        size: bytes.len(),
        expected,
    };
    if bytes.len() != expected {
        return Err(body_size);
    }
    read(bytes).ok_or(body_size)
}

/// The bytes of a value, as the kernel would have written them (for fixtures and fuzzing).
#[cfg(test)]
pub fn bytes_of<T: Wire>(v: &T) -> Vec<u8> {
    // SAFETY: `T: Wire` has no padding, so all size_of::<T>() bytes behind `v` are initialised,
    // and they live as long as the borrow of `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_every_byte_of_the_type() {
        let h = EventHeader {
            kind: 2,
            size: 32,
            ts_ns: 7,
            ..Default::default()
        };
        let b = bytes_of(&h);
        assert_eq!(read::<EventHeader>(&b), Some(h));
        assert_eq!(read::<EventHeader>(&b[..31]), None);
        // Unaligned: the ring buffer only promises 8 bytes.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&b);
        assert_eq!(read::<EventHeader>(&shifted[1..]), Some(h));
    }

    #[test]
    fn a_prefix_is_zero_filled_and_never_longer_than_the_type() {
        let h = EventHeader {
            kind: 2,
            size: 32,
            ts_ns: 7,
            ..Default::default()
        };
        let b = bytes_of(&h);
        let short: EventHeader = read_prefix(&b[..8]).unwrap();
        assert_eq!((short.kind, short.size, short.ts_ns), (2, 32, 0));
        assert!(read_prefix::<EventHeader>(&[0u8; 33]).is_none());
    }

    #[test]
    fn exact_refuses_other_sizes() {
        let b = bytes_of(&EventHeader::default());
        assert!(exact::<EventHeader>(EventKind::Sock, &b).is_ok());
        let mut long = b.clone();
        long.push(0);
        for bad in [&b[..31], &long[..]] {
            assert!(matches!(
                exact::<EventHeader>(EventKind::Sock, bad),
                Err(DecodeError::BodySize { expected: 32, .. })
            ));
        }
    }
}
