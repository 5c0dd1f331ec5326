//! sockpath: per-packet kernel journeys, from the network device to the socket and the process
//! that reads it.
//!
//! Layout: `hooks/` is the hook table (every eBPF program once, with its stage and fallbacks);
//! `kernel/` loads the eBPF programs (sockpath-ebpf), attaches the table and knows the running
//! kernel (BTF); `decode` turns ring-buffer records into events; `journey/` assembles events
//! into journeys and syscall records; `output/` prints them (text, JSON, pcapng); `watch` and
//! `demo` run sessions; `annotate` puts a journey log's journeys into a capture's frames.

/// jemalloc, not glibc's malloc: every packet's journey is a few dozen small allocations, and
/// under glibc the agent spent a fifth of its time in malloc and free, much of it merging freed
/// chunks. At a fixed 48,800
/// datagrams/s it took 3.1 s of CPU with jemalloc against 3.8-4.2 s with glibc (3 interleaved
/// runs each); mimalloc was slower than both.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod annotate;
mod cli;
mod decode;
mod demo;
mod filter;
mod hooks;
mod journey;
mod kernel;
mod output;
mod packet;
mod probes_cmd;
mod procfs;
mod text;
#[cfg(test)]
mod throughput;
mod watch;

use std::{process::ExitCode, time::Instant};

use clap::Parser;

use crate::cli::{Cli, Command, UsageError};

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let result = match cli.command {
        Command::DemoPeer(a) => demo::peer_main(a),
        Command::Watch(a) => match a.filter() {
            Err(e) => Err(e.into()),
            Ok(filter) => runtime().and_then(|rt| {
                rt.block_on(async {
                    let session = watch::Session {
                        filter,
                        output: a.output.clone(),
                    };
                    let stop = async {
                        match a.duration {
                            Some(d) => {
                                tokio::time::sleep(std::time::Duration::from_secs_f64(d)).await
                            }
                            None => std::future::pending().await,
                        }
                    };
                    watch::run(session, started, None, stop).await.map(|_| ())
                })
            }),
        },
        Command::Demo(a) => runtime().and_then(|rt| rt.block_on(demo::run(a, started)).map(|_| ())),
        Command::Probes(a) => probes_cmd::run(a, started),
        Command::Annotate(a) => annotate::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockpath: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
