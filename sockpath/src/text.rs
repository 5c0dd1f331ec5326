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

/// An integer's decimal digits, on the stack: `cat(&["fd ", int(4).as_str()])`.
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

pub fn uint(v: impl Into<u64>) -> Digits {
    let mut v: u64 = v.into();
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return d;
        }
    }
}

pub fn int(v: impl Into<i64>) -> Digits {
    let v: i64 = v.into();
    let mut d = uint(v.unsigned_abs());
    if v < 0 {
        // 19 digits at most for an i64: there is room for the sign.
        d.start -= 1;
        d.buf[d.start] = b'-';
    }
    d
}

/// Appends `v`'s digits, left-padded with zeros to `width`.
pub fn push_padded(s: &mut String, v: u64, width: usize) {
    let d = uint(v);
    for _ in d.as_str().len()..width {
        s.push('0');
    }
    s.push_str(d.as_str());
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
