//! What `sockpath watch` takes on its command line (and, for the output, `sockpath demo` too),
//! validated before anything touches the kernel.

use std::path::PathBuf;

use clap::Args;

use crate::{
    filter::{FilterArgs, WatchFilter, DEFAULT_SNAPLEN, MIN_SNAPLEN},
    live::DEFAULT_RING_KIB,
    usage::UsageError,
};

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// JSON Lines on stdout: one object per journey, syscall and note, then a summary.
    #[arg(long)]
    pub json: bool,
    /// How long a journey waits for its data to be read or its connection accepted, in ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub hold_ms: u64,
    /// Size of the ring buffer from the kernel, in KiB (a power of two, at least 4).
    #[arg(long, value_name = "KIB", default_value_t = DEFAULT_RING_KIB, value_parser = ring_size)]
    pub ring_kib: u32,
    /// Also write every matched packet to this pcapng file (Wireshark, tshark): the bytes seen at
    /// device receive (up to --snaplen), one interface per receiving interface, and the packet's
    /// journey as the frame's comment.
    #[arg(long, value_name = "FILE")]
    pub pcapng: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Bytes of each packet kept for --pcapng, from the link-layer header on (headers always).
    #[arg(long, default_value_t = DEFAULT_SNAPLEN, value_parser = clap::value_parser!(u32).range(MIN_SNAPLEN as i64..=sockpath_ebpf::event::SNAP_MAX as i64))]
    pub snaplen: u32,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Follow one in N matched packets in full (the first of every N on each CPU); every
    /// drop, reset sent, ICMP error and full queue is still told, and the summary gives the
    /// kernel's exact counts of all of them. For busy ports.
    #[arg(long, value_name = "N", value_parser = sample_n)]
    pub sample: Option<u32>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub via: crate::client::Via,
}

/// `--sample`: a whole number of packets, at least 1 (1 follows every packet).
pub fn sample_n(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("0: --sample N follows one in N packets; N must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{s:?} is not a number of packets: --sample N follows one in N packets, N a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

fn ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of KiB"))?;
    if v < 4 || !v.is_power_of_two() || v > 1 << 20 {
        return Err(format!(
            "{v} KiB: the ring buffer size must be a power of two from 4 to 1048576"
        ));
    }
    Ok(v)
}

impl WatchArgs {
    pub fn filter(&self) -> Result<WatchFilter, UsageError> {
        let filter = self.filter.filter(self.snaplen)?;
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                return Err(UsageError(format!(
                    "--duration must be a positive number of seconds, not {d}"
                )));
            }
        }
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::sample_n;

    #[test]
    fn sample_takes_a_positive_whole_number() {
        assert_eq!(sample_n("100"), Ok(100));
        assert_eq!(sample_n("1"), Ok(1));
        assert!(sample_n("0").unwrap_err().contains("at least 1"));
        for bad in ["", "-3", "1.5", "ten", "4294967296"] {
            assert!(sample_n(bad).unwrap_err().contains("not a number"), "{bad}");
        }
    }
}
