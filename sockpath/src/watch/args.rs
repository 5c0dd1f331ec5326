//! What `sockpath watch` takes on its command line (and, for the output, `sockpath demo` too),
//! validated before anything touches the kernel.

use std::{net::IpAddr, path::PathBuf};

use clap::Args;

use crate::{
    filter::{
        parse_port_range, OwnerFilter, PortRange, PortSet, Proto, WatchFilter, COMM_MAX,
        DEFAULT_SNAPLEN, MIN_SNAPLEN,
    },
    usage::UsageError,
};

/// The ring buffer's size unless --ring-kib says otherwise: the 16 MiB default holds about
/// half a second of the heaviest load measured.
pub const DEFAULT_RING_KIB: u32 = 16384;

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

/// What to watch: the filter's options, shared by every command that watches.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Packets whose source or destination port is this one, or in this range (FIRST-LAST);
    /// repeat for more (--port 4000 --port 8000-8010).
    #[arg(long = "port", value_name = "PORT[-PORT]", value_parser = parse_port_range)]
    pub ports: Vec<PortRange>,
    /// Packets whose source or destination address is this one (IPv4 or IPv6).
    #[arg(long)]
    pub addr: Option<IpAddr>,
    /// Only this transport protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Proto>,
    /// Only packets received on this interface (any network namespace).
    #[arg(long)]
    pub iface: Option<String>,
    /// Packets whose socket this process holds, and its socket system calls; repeat for more.
    #[arg(long = "pid", value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pids: Vec<u32>,
    /// Like --pid, for every process of this name (as /proc/PID/comm shows it, at most 15
    /// bytes), those started later included; repeat for more.
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
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
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub via: crate::client::Via,
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
            // Not allowed to look inside (a watcher without root going through the daemon,
            // which checks again; the daemon under systemd's RestrictNamespaces): the name is
            // taken on trust, and the kernel's filter matches it or not.
            let denied = |e: std::io::Error| {
                e.raw_os_error() == Some(libc::EPERM)
                    || e.kind() == std::io::ErrorKind::PermissionDenied
            };
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => return denied(e),
            };
            use std::os::fd::AsRawFd;
            // SAFETY: valid fd of a network namespace file.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return denied(std::io::Error::last_os_error());
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

impl FilterArgs {
    /// The filter, checked: interfaces and processes that exist, process names the kernel can
    /// hold.
    pub fn filter(&self, snaplen: u32) -> Result<WatchFilter, UsageError> {
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
        for c in &self.comms {
            if c.is_empty() || c.len() > COMM_MAX || c.contains('\0') {
                return Err(UsageError(format!(
                    "invalid process name {c:?} for --comm: the kernel keeps 1 to {COMM_MAX} bytes of a name (see /proc/PID/comm)"
                )));
            }
        }
        for pid in &self.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(UsageError(format!(
                    "no process with pid {pid} for --pid (`ps -e` lists them)"
                )));
            }
        }
        Ok(WatchFilter {
            ports: PortSet::new(self.ports.iter().copied()),
            addr: self.addr,
            proto: self.proto,
            iface: self.iface.clone(),
            owners: OwnerFilter {
                pids: self.pids.iter().copied().collect(),
                comms: self.comms.iter().cloned().collect(),
            },
            snaplen,
        })
    }
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
