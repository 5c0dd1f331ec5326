//! From the eBPF programs' clock (CLOCK_MONOTONIC, bpf_ktime_get_ns) to wall-clock time, the
//! clock a capture's timestamps use (skb->tstamp is CLOCK_REALTIME).

use chrono::{DateTime, Utc};

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

/// RFC 3339 UTC with nanoseconds, for JSON.
pub fn rfc3339(wall_ns: u64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(wall_ns as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Local time of day with microseconds, as tcpdump and Wireshark's default time column show it.
pub fn time_of_day(wall_ns: u64) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(wall_ns as i64).with_timezone(&chrono::Local);
    t.format("%H:%M:%S%.6f").to_string()
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
    fn sampled_offset_tracks_realtime() {
        let c = Clock::sample();
        let wall = c.wall_ns(monotonic_ns()) as i128;
        assert!((wall - now(libc::CLOCK_REALTIME)).abs() < 5_000_000);
    }
}
