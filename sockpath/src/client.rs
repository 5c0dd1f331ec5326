//! The other side of the daemon's socket: `watch`, `probes` (and `stats`) use a running daemon
//! when there is one (no sudo for the members of its group), and run alone otherwise.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use clap::Args;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        unix::{OwnedReadHalf, OwnedWriteHalf},
        UnixStream,
    },
};

use crate::{
    api::{Reply, Request},
    daemon::{
        access::{group_name, refusal},
        listen::DEFAULT_SOCKET,
    },
};

/// Whether a command goes through a daemon.
#[derive(Args, Debug, Clone, Default)]
pub struct Via {
    /// Use the sockpath daemon listening on this socket (without this, the daemon at
    /// /run/sockpath/sockpath.sock when it runs).
    #[arg(long, value_name = "PATH", conflicts_with = "standalone")]
    pub daemon: Option<PathBuf>,
    /// Load and attach programs of its own (as root), even when a daemon runs.
    #[arg(long)]
    pub standalone: bool,
}

/// A connection to a daemon.
pub struct Daemon {
    pub lines: BufReader<OwnedReadHalf>,
    pub out: OwnedWriteHalf,
    buf: String,
}

impl Daemon {
    /// Sends a request. A daemon that refused the connection (it says why, then closes it)
    /// makes this fail with its words.
    pub async fn send(&mut self, r: &Request) -> io::Result<()> {
        let sent = async {
            self.out.write_all(r.to_line().as_bytes()).await?;
            self.out.flush().await
        }
        .await;
        let Err(e) = sent else {
            return Ok(());
        };
        match self.line().await {
            Ok(Some(line)) => match serde_json::from_str::<Reply>(&line) {
                Ok(Reply::Error { error }) => Err(io::Error::other(error)),
                _ => Err(e),
            },
            _ => Err(e),
        }
    }

    /// The next line from the daemon; None when it closed the connection. Safe to cancel (in
    /// a `select!`): a line read in part is kept and completed by the next call.
    pub async fn line(&mut self) -> io::Result<Option<String>> {
        let n = self.lines.read_line(&mut self.buf).await?;
        if n == 0 && self.buf.is_empty() {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.buf);
        line.truncate(line.trim_end().len());
        Ok(Some(line))
    }

    /// Nothing more is buffered from the daemon: a good time to flush the output.
    pub fn idle(&self) -> bool {
        self.lines.buffer().is_empty()
    }
}

/// Connects as `via` says: Some daemon, or None to run alone (--standalone, or no daemon at
/// the default path). Must run inside a tokio runtime.
pub fn connect(via: &Via) -> anyhow::Result<Option<Daemon>> {
    if via.standalone {
        return Ok(None);
    }
    let (path, named) = match &via.daemon {
        Some(p) => (p.as_path(), true),
        None => (Path::new(DEFAULT_SOCKET), false),
    };
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => {
            s.set_nonblocking(true)?;
            let (rd, wr) = UnixStream::from_std(s)?.into_split();
            Ok(Some(Daemon {
                lines: BufReader::new(rd),
                out: wr,
                buf: String::new(),
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(anyhow!(
            "{} ({})",
            refused(path),
            path.display()
        )),
        // No daemon there (never started, or gone and its socket left behind).
        Err(e) if !named && matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => Ok(None),
        Err(e) => Err(anyhow!(
            "no sockpath daemon answers on {}: {e} (start one with `sockpath daemon`, or run alone with --standalone)",
            path.display()
        )),
    }
}

/// The refusal for someone the socket's mode keeps out, naming the group it admits.
fn refused(path: &Path) -> String {
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() };
    match std::fs::metadata(path) {
        Ok(m) if m.mode() & 0o060 == 0 => format!(
            "the sockpath daemon serves root only (it was started without a group), and uid {uid} is not root: \
             run sockpath as root (sudo)"
        ),
        Ok(m) => refusal(uid, &group_name(m.gid()).unwrap_or_else(|| m.gid().to_string())),
        Err(_) => refusal(uid, "sockpath"),
    }
}
