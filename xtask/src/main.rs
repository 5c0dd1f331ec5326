//! `cargo xtask <task>`: everything around the code. Each task installs what it needs first
//! (idempotently), so the README's two commands work on a fresh Debian/Ubuntu machine.

mod bench;
mod cmd;
mod kernel_table;
mod setup;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: Debian packages (LLVM 22, test tools), the
    /// nightly rust-src component, bpf-linker. Does nothing that is already done.
    Setup,
    /// Set up, build, and run `sudo sockpath demo` (the netcat experiment on loopback).
    Demo,
    /// Set up, build, and run sockpath with these arguments as root, e.g.
    /// `cargo xtask run -- watch --port 4000`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run every test: formatting, clippy, unit tests, the integration tests
    /// against this machine's kernel (as root), and the same tests inside Debian's stock
    /// kernels under qemu (the default matrix of `cargo xtask vm`).
    Test,
    /// Set up, build, and run the integration tests inside Debian's stock kernels (5.10, 6.1,
    /// 6.12, sid) under qemu (TCG); prints pass/fail per kernel. Logs go to target/vm/.
    Vm(vm::VmArgs),
    /// Set up, build sockpath in release mode, and measure what watching costs on loopback,
    /// side by side with tcpdump (as root). Prints a table, also in target/bench/results.md.
    Bench(bench::BenchArgs),
    /// Copy each kernel's `sockpath probes --json` (target/vm/<kernel>/probes.json after
    /// `cargo xtask vm`, and this machine's, as root) into docs/kernels/ and rewrite the
    /// README's table of the hooks on each kernel from them.
    KernelTable,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::all(),
        Task::Demo => setup::all().and_then(|_| test::run_sockpath(&["demo".into()])),
        Task::Run { args } => setup::all().and_then(|_| test::run_sockpath(&args)),
        Task::Test => setup::all().and_then(|_| test::all()),
        Task::Vm(args) => setup::all().and_then(|_| vm::run(args)),
        Task::Bench(args) => setup::all().and_then(|_| bench::run_bench(args)),
        Task::KernelTable => kernel_table::run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
