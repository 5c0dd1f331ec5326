//! `sockpath demo`: the classic netcat experiment, replayed on loopback by sockpath's own
//! processes while it watches, so nothing else needs to be installed.
//!
//! A server listens on 127.0.0.1:PORT; a client bound to port 4444 connects, sends "salam\n" and
//! closes; the server reads it and the end of file and closes; then a client connects to the now
//! closed port and is refused. The peers are separate processes (named "server" and "client") so
//! the output shows which process owns which socket.

pub mod peer;

use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use clap::Args;

use crate::{
    filter::WatchFilter,
    journey::model::Summary,
    usage::UsageError,
    watch::{self, OutputArgs, Session},
};

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

/// `sockpath demo`.
pub fn command(args: DemoArgs, started: Instant) -> anyhow::Result<()> {
    watch::runtime()?.block_on(run(args, started)).map(|_| ())
}

async fn run(args: DemoArgs, started: Instant) -> anyhow::Result<Summary> {
    // Fail early and clearly if something already holds the port.
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.port)).map_err(|e| {
        UsageError(format!(
            "cannot run the demo on 127.0.0.1:{}: {e}; pick another port with --port",
            args.port
        ))
    })?;
    let session = Session {
        filter: WatchFilter::port(args.port),
        output: args.output.clone(),
        sample: None,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let (port, client_port) = (args.port, args.client_port);
    tokio::spawn(async move {
        if ready_rx.await.is_err() {
            return;
        }
        let r = tokio::task::spawn_blocking(move || experiment(port, client_port))
            .await
            .map_err(|e| anyhow!("demo task failed: {e}"))
            .and_then(|r| r);
        // Let the last packets' journeys settle before stopping.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = done_tx.send(r);
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let waiter = tokio::spawn(async move {
        let r = done_rx.await.unwrap_or(Ok(()));
        let _ = stop_tx.send(());
        r
    });
    let summary = watch::run(session, started, Some(ready_tx), async {
        let _ = stop_rx.await;
    })
    .await?;
    waiter
        .await
        .map_err(|e| anyhow!("demo task failed: {e}"))??;
    Ok(summary)
}

fn peer(role: &str, port: u16, client_port: u16) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("locating sockpath's own executable")?;
    Command::new(exe)
        .args(["__demo-peer", role, "--port", &port.to_string()])
        .args(["--client-port", &client_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the demo {role}"))
}

fn experiment(port: u16, client_port: u16) -> anyhow::Result<()> {
    let mut server = peer("server", port, client_port)?;
    let mut line = String::new();
    let out = server.stdout.take().context("server stdout")?;
    BufReader::new(out).read_line(&mut line)?;
    if line.trim() != "listening" {
        return Err(anyhow!("the demo server did not start: {line:?}"));
    }
    let status = peer("client", port, client_port)?.wait()?;
    if !status.success() {
        return Err(anyhow!("the demo client failed ({status})"));
    }
    let status = server.wait()?;
    if !status.success() {
        return Err(anyhow!("the demo server failed ({status})"));
    }
    // Let the closing handshake finish before knocking on the closed port.
    std::thread::sleep(Duration::from_millis(100));
    let status = peer("refused", port, client_port)?.wait()?;
    if !status.success() {
        return Err(anyhow!("the refused-connection client failed ({status})"));
    }
    Ok(())
}
