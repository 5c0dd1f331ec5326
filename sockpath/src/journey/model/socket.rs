//! A socket as the output shows it, and the process holding it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{read, Name};

/// A process's handle on a socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Shared, like the socket's endpoints: every view of the socket names its owner.
    pub comm: Arc<str>,
    pub fd: i32,
}

/// A kernel address, written in hex (`0xffff88810a3c2a00`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

/// Read back, what the output shows of it (`local`, `remote`, `state`, `owner`) is required, the
/// rest is zero when absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketView {
    #[serde(default, deserialize_with = "read::name")]
    pub proto: Name,
    /// "127.0.0.1:4000", "[::1]:4000". Shared with the socket table: a journey names its socket
    /// several times, and a copy of the text each time was a good part of the allocations.
    pub local: Arc<str>,
    pub remote: Arc<str>,
    /// TCP state name (LISTEN, ESTABLISHED, ...); for UDP "UNCONNECTED" or "CONNECTED".
    #[serde(deserialize_with = "read::name")]
    pub state: Name,
    /// Kernel address of the struct sock, hex.
    #[serde(default)]
    pub sk: Hex,
    /// Socket inode (socket:[N] in /proc/PID/fd); 0 when it has no file.
    #[serde(default)]
    pub ino: u64,
    #[serde(default)]
    pub netns: u32,
    /// Who holds it, if known: the process and fd.
    pub owner: Option<Owner>,
}

impl SocketView {
    /// Whether it has a remote end (a connection, a connected UDP socket), as opposed to a
    /// listener or an unbound or unconnected socket: the remote endpoint's port is not 0.
    pub fn has_peer(&self) -> bool {
        !self.remote.is_empty() && !self.remote.ends_with(":0")
    }
}
