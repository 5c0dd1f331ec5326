//! `sockpath daemon`: one set of programs attached for every watcher, served to root and the
//! members of a group over a Unix socket (`crate::api` documents the protocol), with Prometheus
//! metrics on request.
//!
//! Threads: the engine (ring buffer, pipelines, the kernel) runs on the main thread and never
//! waits for a client; connections and the metrics server run on the runtime's two workers, and
//! talk to the engine through channels.

pub mod access;
mod engine;
pub mod listen;
mod owners;
mod queue;
mod session;
mod sink;
mod union;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Args;
use tokio::sync::mpsc;

use self::{
    access::Group,
    engine::{Engine, EngineConfig, FAREWELL},
    listen::{DEFAULT_GROUP, DEFAULT_SOCKET},
    session::Shared,
};
use crate::{
    filter::{parse_port_range, PortRange, DEFAULT_SNAPLEN, MIN_SNAPLEN},
    metrics::http,
    usage::UsageError,
};

#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// The Unix socket watchers connect to (mode 0660, owned by root and --group).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The group whose members may use the daemon without sudo: a name or a number. Without
    /// it, group "sockpath" if it exists, else root alone.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// A port (or FIRST-LAST range) the metrics count packets of, whoever watches (the
    /// programs stay attached); repeat for more.
    #[arg(long = "metrics-port", value_name = "PORT[-PORT]", value_parser = parse_port_range)]
    pub metrics_ports: Vec<PortRange>,
    /// Size of the ring buffer from the kernel, in KiB (a power of two, at least 4).
    #[arg(long, value_name = "KIB", default_value_t = crate::live::DEFAULT_RING_KIB)]
    pub ring_kib: u32,
    /// Bytes of each packet kept (for watchers' --pcapng), from the link-layer header on.
    #[arg(long, default_value_t = DEFAULT_SNAPLEN, value_parser = clap::value_parser!(u32).range(MIN_SNAPLEN as i64..=sockpath_ebpf::event::SNAP_MAX as i64))]
    pub snaplen: u32,
    /// What each watcher's queue holds at most, in KiB: past it, the items a slow watcher
    /// cannot take are dropped, counted and reported to it.
    #[arg(long, value_name = "KIB", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(16..))]
    pub queue_kib: u32,
}

impl DaemonArgs {
    /// The group served: --group (which must exist, or be a number), else "sockpath" if the
    /// system has it.
    fn group(&self) -> Result<Option<Group>, UsageError> {
        match &self.group {
            Some(g) => Group::resolve(g).map(Some).map_err(UsageError),
            None => match Group::resolve(DEFAULT_GROUP) {
                Ok(g) => Ok(Some(g)),
                Err(_) => {
                    tracing::warn!(
                        "no group {DEFAULT_GROUP:?} and no --group: only root can use the daemon \
                         (groupadd --system {DEFAULT_GROUP} to share it)"
                    );
                    Ok(None)
                }
            },
        }
    }
}

/// `sockpath daemon`: until SIGTERM or SIGINT.
pub fn command(args: DaemonArgs) -> anyhow::Result<()> {
    if !args.metrics_ports.is_empty() && args.metrics.is_none() {
        return Err(UsageError(
            "--metrics-port counts packets for the metrics: give --metrics ADDR:PORT too".into(),
        )
        .into());
    }
    if args.ring_kib < 4 || !args.ring_kib.is_power_of_two() || args.ring_kib > 1 << 20 {
        return Err(UsageError(format!(
            "--ring-kib {}: the ring buffer size must be a power of two from 4 to 1048576",
            args.ring_kib
        ))
        .into());
    }
    let group = args.group()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, group))
}

async fn serve(args: DaemonArgs, group: Option<Group>) -> anyhow::Result<()> {
    let listening = listen::bind(&args.socket, group.as_ref())?;
    listening.listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listening.listener.try_clone()?)?;
    let metrics_listener = match args.metrics {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    let metrics_filter =
        (!args.metrics_ports.is_empty()).then(|| union::ports(&args.metrics_ports, args.snaplen));
    let mut engine = Engine::new(EngineConfig {
        ring_kib: args.ring_kib,
        snaplen: args.snaplen,
        metrics: metrics_filter,
    });
    engine.start()?;

    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (snap_tx, snap_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(
        group.clone(),
        control_tx,
        args.queue_kib as usize * 1024,
    ));
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let server = tokio::spawn(session::serve(listener, shared, alive_tx));
    let metrics = metrics_listener.map(|l| {
        tracing::info!(
            "metrics on http://{}/metrics",
            l.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        tokio::spawn(http::serve(l, snap_tx))
    });
    match &group {
        Some(g) => tracing::info!(
            "listening on {} for root and group {} ({})",
            args.socket.display(),
            g.name,
            g.gid
        ),
        None => tracing::info!("listening on {} for root", args.socket.display()),
    }

    let result = engine.run(control_rx, snap_rx).await;
    // No new watchers; those still connected are sent their summaries.
    server.abort();
    drop(listening);
    let _ = tokio::time::timeout(FAREWELL, alive_rx.recv()).await;
    if let Some(m) = metrics {
        m.abort();
    }
    tracing::info!("stopped");
    result
}
