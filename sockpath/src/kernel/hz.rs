//! The running kernel's tick rate (CONFIG_HZ), which turns jiffies (a time-wait socket's timer)
//! into time. Nothing the kernel exports names it directly: its configuration says it where
//! installed (/boot/config-RELEASE), and otherwise it is measured, the jiffies counter against
//! the monotonic clock in /proc/timer_list, twice 200 ms apart. Unknown, journeys say nothing
//! of jiffies rather than guess.

use std::{
    io::{BufRead, BufReader},
    sync::LazyLock,
    time::Duration,
};

/// The tick rates a kernel can be configured with on the architectures sockpath runs on
/// (x86-64 and arm64: CONFIG_HZ_100, _250, _300, _1000).
const RATES: [u32; 4] = [100, 250, 300, 1000];

/// How far apart the two samples of a measurement are: 20 ticks at 100 Hz, so one tick of
/// error (the counter moves in steps) stays within 5 %, and 250 and 300 Hz are told apart.
const GAP: Duration = Duration::from_millis(200);

static HZ: LazyLock<Option<u32>> = LazyLock::new(find);

/// The kernel's HZ, found once (a measurement blocks its first caller up to `GAP`).
pub fn hz() -> Option<u32> {
    *HZ
}

/// Finds HZ on a thread of its own, so that it is known by the time a journey needs it.
pub fn prefetch() {
    std::thread::Builder::new()
        .name("sockpath-hz".into())
        .spawn(|| {
            let _ = hz();
        })
        .ok();
}

/// `jiffies` in milliseconds, where HZ is known.
pub fn jiffies_to_ms(jiffies: u32) -> Option<u64> {
    hz().map(|hz| jiffies as u64 * 1000 / hz as u64)
}

fn find() -> Option<u32> {
    let found = from_config().or_else(measured);
    match found {
        Some(hz) => log::debug!("kernel HZ: {hz}"),
        None => log::debug!("kernel HZ not found: time-wait timers are not told"),
    }
    found
}

fn from_config() -> Option<u32> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let text = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
    config_hz(&text)
}

/// `CONFIG_HZ=N` of a kernel configuration.
pub fn config_hz(config: &str) -> Option<u32> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
}

fn measured() -> Option<u32> {
    let a = timer_list_sample()?;
    std::thread::sleep(GAP);
    let b = timer_list_sample()?;
    rate(a, b)
}

/// One sample of (monotonic ns, jiffies) from /proc/timer_list: its `now at N nsecs` header and
/// the first CPU's `jiffies: J`, read in the same pass.
fn timer_list_sample() -> Option<(u64, u64)> {
    let f = std::fs::File::open("/proc/timer_list").ok()?;
    parse_timer_list(BufReader::new(f))
}

fn parse_timer_list(r: impl BufRead) -> Option<(u64, u64)> {
    let mut now = None;
    for line in r.lines() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix("now at ") {
            now = rest.strip_suffix(" nsecs")?.trim().parse().ok();
        } else if let Some(j) = line.strip_prefix("jiffies: ") {
            return Some((now?, j.trim().parse().ok()?));
        }
    }
    None
}

/// The configured rate the two samples' ticks per second fit, within 6 % (else None).
fn rate(a: (u64, u64), b: (u64, u64)) -> Option<u32> {
    let ns = b.0.checked_sub(a.0).filter(|ns| *ns > 0)?;
    let ticks = b.1.checked_sub(a.1)?;
    let per_s = ticks as f64 * 1e9 / ns as f64;
    RATES
        .iter()
        .copied()
        .min_by(|x, y| {
            (per_s - *x as f64)
                .abs()
                .total_cmp(&(per_s - *y as f64).abs())
        })
        .filter(|r| (per_s - *r as f64).abs() <= *r as f64 * 0.06)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_hz() {
        assert_eq!(
            config_hz("# CONFIG_HZ_1000 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n"),
            Some(250)
        );
        assert_eq!(config_hz("CONFIG_HZ_250=y\n"), None);
    }

    #[test]
    fn timer_list_gives_now_and_jiffies() {
        let text = "Timer List Version: v0.10\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 230070979832 \
                    nsecs\n\ncpu: 0\n  .idle_jiffies   : 4294948377\njiffies: 4294949752\n\
                    jiffies: 4294949753\n";
        assert_eq!(
            parse_timer_list(text.as_bytes()),
            Some((230070979832, 4294949752))
        );
        assert_eq!(parse_timer_list("jiffies: 5\n".as_bytes()), None);
    }

    #[test]
    fn a_rate_is_one_the_kernel_can_have() {
        let s = 1_000_000_000;
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1050)), Some(250));
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1049)), Some(250));
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1060)), Some(300));
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1021)), Some(100));
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1200)), Some(1000));
        // Between two rates: no guess.
        assert_eq!(rate((s, 1000), (s + 200_000_000, 1110)), None);
        assert_eq!(rate((s, 1000), (s, 1010)), None);
    }

    /// On the machine the tests run on: the measurement agrees with the kernel's configuration
    /// where one is readable.
    #[test]
    fn measured_matches_the_configuration() {
        let Some(m) = measured() else {
            return; // /proc/timer_list is root's to read
        };
        assert!(RATES.contains(&m));
        if let Some(c) = from_config() {
            assert_eq!(m, c);
        }
        // A kernel built with IKCONFIG_PROC (this one's test machine) tells it too.
        if let Ok(out) = std::process::Command::new("zcat")
            .arg("/proc/config.gz")
            .output()
        {
            if let Some(c) = config_hz(&String::from_utf8_lossy(&out.stdout)) {
                assert_eq!(m, c);
            }
        }
    }
}
