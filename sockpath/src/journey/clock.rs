//! From the eBPF programs' clock (CLOCK_MONOTONIC, bpf_ktime_get_ns) to wall-clock time, the
//! clock a capture's timestamps use (skb->tstamp is CLOCK_REALTIME).

use chrono::{DateTime, Utc};

use crate::text::push_padded;

#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// realtime - monotonic, nanoseconds.
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

pub fn monotonic_ns() -> u64 {
    now(libc::CLOCK_MONOTONIC) as u64
}

impl Clock {
    /// Samples both clocks; the monotonic reading is bracketed by two realtime readings and the
    /// midpoint used, so the offset is good to about a microsecond.
    pub fn sample() -> Self {
        let r1 = now(libc::CLOCK_REALTIME);
        let m = now(libc::CLOCK_MONOTONIC);
        let r2 = now(libc::CLOCK_REALTIME);
        Self {
            offset_ns: (r1 + r2) / 2 - m,
        }
    }

    #[cfg(test)]
    pub fn fixed(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.offset_ns).max(0) as u64
    }

    #[cfg(test)]
    pub fn mono_ns(&self, wall_ns: u64) -> u64 {
        (wall_ns as i128 - self.offset_ns).max(0) as u64
    }
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 UTC with nanoseconds, for JSON. Written by hand: it runs for every item.
pub fn rfc3339(wall_ns: u64) -> String {
    let mut s = String::with_capacity(30);
    SECOND.with_borrow_mut(|(at, prefix)| {
        let secs = (wall_ns / 1_000_000_000) as i64;
        if *at != secs {
            *at = secs;
            prefix.clear();
            date_and_second(prefix, secs);
        }
        s.push_str(prefix);
    });
    push_padded(&mut s, wall_ns % 1_000_000_000, 9);
    s.push('Z');
    s
}

/// `YYYY-MM-DDTHH:MM:SS.`
fn date_and_second(s: &mut String, secs: i64) {
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    push_padded(s, y as u64, 4);
    s.push('-');
    push_padded(s, mo.into(), 2);
    s.push('-');
    push_padded(s, d.into(), 2);
    s.push('T');
    push_padded(s, sod / 3600, 2);
    s.push(':');
    push_padded(s, sod / 60 % 60, 2);
    s.push(':');
    push_padded(s, sod % 60, 2);
    s.push('.');
}

thread_local! {
    /// (UTC second, its date and time of day as RFC 3339 text): worked out once per second, not
    /// once per journey.
    static SECOND: std::cell::RefCell<(i64, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) };
    /// (UTC second, local offset in seconds then): the time zone is looked up once per second,
    /// not once per line.
    static LOCAL_OFFSET: std::cell::Cell<(i64, i64)> = const { std::cell::Cell::new((i64::MIN, 0)) };
}

fn local_offset(secs: i64) -> i64 {
    LOCAL_OFFSET.with(|c| {
        let (at, off) = c.get();
        if at == secs {
            return off;
        }
        let off = DateTime::<Utc>::from_timestamp(secs, 0)
            .map(|t| i64::from(t.with_timezone(&chrono::Local).offset().local_minus_utc()))
            .unwrap_or(0);
        c.set((secs, off));
        off
    })
}

/// Local time of day with microseconds, as tcpdump and Wireshark's default time column show it.
pub fn time_of_day(wall_ns: u64) -> String {
    let secs = (wall_ns / 1_000_000_000) as i64;
    let local = (secs + local_offset(secs)).rem_euclid(86_400) as u64;
    let mut s = String::with_capacity(15);
    push_padded(&mut s, local / 3600, 2);
    s.push(':');
    push_padded(&mut s, local / 60 % 60, 2);
    s.push(':');
    push_padded(&mut s, local % 60, 2);
    s.push('.');
    push_padded(&mut s, wall_ns % 1_000_000_000 / 1000, 6);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_inverse() {
        let c = Clock::fixed(1_700_000_000_000_000_000);
        assert_eq!(c.mono_ns(c.wall_ns(123)), 123);
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }

    #[test]
    fn hand_written_formats_agree_with_chrono() {
        for ns in [
            0u64,
            951_782_400_000_000_001,   // 2000-02-29
            1_700_000_000_123_456_789, // 2023-11-14
            1_700_000_000_999_999_999, // the same second again
            4_102_444_800_999_999_999, // 2100-01-01
        ] {
            let t = DateTime::<Utc>::from_timestamp_nanos(ns as i64);
            assert_eq!(
                rfc3339(ns),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            );
            assert_eq!(
                time_of_day(ns),
                t.with_timezone(&chrono::Local)
                    .format("%H:%M:%S%.6f")
                    .to_string()
            );
        }
    }

    #[test]
    fn sampled_offset_tracks_realtime() {
        let c = Clock::sample();
        let wall = c.wall_ns(monotonic_ns()) as i128;
        assert!((wall - now(libc::CLOCK_REALTIME)).abs() < 5_000_000);
    }
}
