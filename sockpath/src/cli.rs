//! Command line: what a user can ask for, validated before anything touches the kernel.

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::filter::{Proto, WatchFilter, DEFAULT_SNAPLEN, MIN_SNAPLEN};

#[derive(Parser, Debug)]
#[command(
    name = "sockpath",
    version,
    about = "Shows, for every packet this machine receives, its trip through the kernel to the socket and the process that reads it (or why it never arrived)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Watch received packets live and print each one's kernel journey, with the socket system
    /// calls of the processes that own the watched sockets.
    Watch(WatchArgs),
    /// Replay the netcat experiment on loopback (server on 127.0.0.1:PORT, client from port
    /// 4444 sends "salam\n", both close, then a connection to the closed port) and show it.
    Demo(DemoArgs),
    /// Show which kernel hook serves each journey stage on this kernel, and why others were refused.
    Probes(ProbesArgs),
    /// Match the frames of a capture (tcpdump or Wireshark, pcap or pcapng) to the journeys of a
    /// `watch --json` log of the same traffic, and write the capture back as pcapng with each
    /// frame's journey as its comment. Needs no privileges.
    Annotate(AnnotateArgs),
    /// A process the demo starts as its server or client.
    #[command(name = "__demo-peer", hide = true)]
    DemoPeer(crate::demo::PeerArgs),
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// JSON Lines on stdout: one object per journey, syscall and note, then a summary.
    #[arg(long)]
    pub json: bool,
    /// How long a journey waits for its data to be read or its connection accepted, in ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub hold_ms: u64,
    /// Size of the ring buffer from the kernel, in KiB (a power of two, at least 4).
    #[arg(long, value_name = "KIB", default_value_t = 16384, value_parser = ring_size)]
    pub ring_kib: u32,
    /// Also write every matched packet to this pcapng file (Wireshark, tshark): the bytes seen at
    /// device receive (up to --snaplen), one interface per receiving interface, and the packet's
    /// journey as the frame's comment.
    #[arg(long, value_name = "FILE")]
    pub pcapng: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Packets whose source or destination port is this one.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Packets whose source or destination address is this one (IPv4 or IPv6).
    #[arg(long)]
    pub addr: Option<IpAddr>,
    /// Only this transport protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Proto>,
    /// Only packets received on this interface (any network namespace).
    #[arg(long)]
    pub iface: Option<String>,
    /// Bytes of each packet kept for --pcapng, from the link-layer header on (headers always).
    #[arg(long, default_value_t = DEFAULT_SNAPLEN, value_parser = clap::value_parser!(u32).range(MIN_SNAPLEN as i64..=sockpath_ebpf::event::SNAP_MAX as i64))]
    pub snaplen: u32,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// The server's port.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The client's source port.
    #[arg(long, default_value_t = 4444, value_parser = clap::value_parser!(u16).range(1..))]
    pub client_port: u16,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ProbesArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the hook table itself (markdown: each stage's hooks in order of preference, the
    /// oldest kernel each is known to work on, what a stage loses without them) and attach
    /// nothing. Needs no privileges.
    #[arg(long, conflicts_with = "json")]
    pub table: bool,
}

#[derive(Args, Debug, Clone)]
pub struct AnnotateArgs {
    /// The capture: a pcap or pcapng file tcpdump or Wireshark wrote while sockpath watched.
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
    /// The journey log: what `sockpath watch --json` printed (JSON Lines).
    #[arg(long, value_name = "JOURNEYS.jsonl")]
    pub journeys: PathBuf,
    /// Where to write the annotated capture (pcapng).
    #[arg(short = 'o', long = "output", value_name = "OUT.pcapng")]
    pub output: PathBuf,
    /// Largest difference, in milliseconds, between a frame's timestamp and its journey's for
    /// the two to be the same packet (headers must match as well).
    #[arg(long, value_name = "MS", default_value_t = crate::annotate::DEFAULT_TOLERANCE_MS, value_parser = tolerance)]
    pub tolerance_ms: f64,
    /// The report as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

fn tolerance(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if !(0.0..=3_600_000.0).contains(&v) {
        return Err(format!("{v}: the tolerance must be from 0 to 3600000 ms"));
    }
    Ok(v)
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

/// A mistake in the command line: message and exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Names of the interfaces of every network namespace sockpath can see: the current one, and
/// those `ip netns` created (/run/netns).
fn interface_exists(name: &str) -> bool {
    if std::path::Path::new("/sys/class/net").join(name).exists() {
        return true;
    }
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return false;
    };
    let name = name.to_string();
    dir.flatten().any(|ns| {
        let path = ns.path();
        let name = name.clone();
        // setns() applies to the calling thread only: ask from a throwaway thread.
        std::thread::spawn(move || {
            let Ok(f) = std::fs::File::open(&path) else {
                return false;
            };
            use std::os::fd::AsRawFd;
            // SAFETY: valid fd of a network namespace file.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return false;
            }
            let Ok(c) = std::ffi::CString::new(name) else {
                return false;
            };
            // SAFETY: valid C string.
            unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
        })
        .join()
        .unwrap_or(false)
    })
}

impl WatchArgs {
    pub fn filter(&self) -> Result<WatchFilter, UsageError> {
        if let Some(i) = &self.iface {
            if i.is_empty() || i.len() > 15 || i.contains('/') {
                return Err(UsageError(format!(
                    "invalid interface name {i:?}: names are 1 to 15 characters without '/'"
                )));
            }
            if !interface_exists(i) {
                return Err(UsageError(format!(
                    "no interface named {i:?} (looked in this network namespace and those in /run/netns); `ip link` lists them"
                )));
            }
        }
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                return Err(UsageError(format!(
                    "--duration must be a positive number of seconds, not {d}"
                )));
            }
        }
        Ok(WatchFilter {
            port: self.port,
            addr: self.addr,
            proto: self.proto,
            iface: self.iface.clone(),
            snaplen: self.snaplen,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sockpath").chain(args.iter().copied()))
    }

    #[test]
    fn port_bounds_are_usage_errors() {
        for bad in ["0", "65536", "-1", "http"] {
            let e = parse(&["watch", "--port", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["watch", "--port", "65535"]).is_ok());
    }

    #[test]
    fn malformed_address_and_unknown_option_are_usage_errors() {
        assert_eq!(
            parse(&["watch", "--addr", "300.1.1.1"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse(&["watch", "--bogus"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["watch", "--proto", "sctp"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn unknown_interface_is_rejected() {
        let Command::Watch(w) = parse(&["watch", "--iface", "nosuchif0"]).unwrap().command else {
            panic!()
        };
        assert!(w.filter().unwrap_err().0.contains("no interface named"));
        let Command::Watch(w) = parse(&["watch", "--iface", "lo"]).unwrap().command else {
            panic!()
        };
        assert_eq!(w.filter().unwrap().iface.as_deref(), Some("lo"));
    }
}
