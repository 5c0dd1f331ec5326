//! Building the output's strings without `format!`: a journey is told with a dozen short
//! strings, for every packet, and the formatting machinery (with its allocations) was the
//! largest cost of user space under load.

/// The pieces, joined, in one allocation.
pub fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// An integer's decimal digits, on the stack (itoa's buffer): `cat(&["fd ", int(4).as_str()])`.
/// The digits are written when asked for, straight into the buffer the `&str` borrows.
pub struct Digits {
    buf: itoa::Buffer,
    v: Num,
}

enum Num {
    U(u64),
    I(i64),
}

impl Digits {
    pub fn as_str(&mut self) -> &str {
        match self.v {
            Num::U(v) => self.buf.format(v),
            Num::I(v) => self.buf.format(v),
        }
    }
}

pub fn uint(v: impl Into<u64>) -> Digits {
    Digits {
        buf: itoa::Buffer::new(),
        v: Num::U(v.into()),
    }
}

pub fn int(v: impl Into<i64>) -> Digits {
    Digits {
        buf: itoa::Buffer::new(),
        v: Num::I(v.into()),
    }
}

/// Appends `v`'s digits, left-padded with zeros to `width`.
pub fn push_padded(s: &mut String, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let d = buf.format(v);
    for _ in d.len()..width {
        s.push('0');
    }
    s.push_str(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_pieces_and_numbers() {
        assert_eq!(
            cat(&["fd ", uint(4u32).as_str(), ", ", int(-1i32).as_str()]),
            "fd 4, -1"
        );
        assert_eq!(uint(u64::MAX).as_str(), "18446744073709551615");
        assert_eq!(int(i64::MIN).as_str(), "-9223372036854775808");
        assert_eq!(uint(0u8).as_str(), "0");
        let mut s = String::new();
        push_padded(&mut s, 7, 3);
        push_padded(&mut s, 1234, 2);
        assert_eq!(s, "0071234");
    }
}
