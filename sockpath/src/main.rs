//! The `sockpath` command: parses the command line, runs the command, and turns its result into
//! an exit code (2 for a usage error, 1 for any other failure).

/// jemalloc, not glibc's malloc: every packet's journey is a few dozen small allocations, and
/// under glibc the agent spent a fifth of its time in malloc and free, much of it merging freed
/// chunks. At a fixed 48,800
/// datagrams/s it took 3.1 s of CPU with jemalloc against 3.8-4.2 s with glibc (3 interleaved
/// runs each); mimalloc was slower than both.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::{process::ExitCode, time::Instant};

use clap::Parser;
use sockpath::{
    annotate,
    cli::{Cli, Command},
    daemon, demo, probes_cmd, stats,
    usage::UsageError,
    watch,
};

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // The daemon logs its clients' comings and goings (to the journal, under systemd).
    let level = match cli.command {
        Command::Daemon(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();

    let result = match cli.command {
        Command::DemoPeer(a) => demo::peer::run(a),
        Command::Watch(a) => watch::command(a, started),
        Command::Stats(a) => stats::command(a, started),
        Command::Demo(a) => demo::command(a, started),
        Command::Probes(a) => probes_cmd::run(a, started),
        Command::Daemon(a) => daemon::command(a),
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
