//! The filter's options as every command that watches takes them (`watch`, the daemon's
//! watchers and metrics), checked against this machine before anything touches the kernel.

use std::net::IpAddr;

use clap::Args;

use super::{parse_port_range, OwnerFilter, PortRange, PortSet, Proto, WatchFilter, COMM_MAX};
use crate::usage::UsageError;

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
