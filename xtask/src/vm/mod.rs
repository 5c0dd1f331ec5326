//! `cargo xtask vm`: sockpath's integration tests inside Debian's stock kernels (5.10, 6.1, 6.12
//! and sid's newest) under qemu, with a pass/fail table per kernel.
//!
//! The host's kernel has tracepoints only (no kprobes, no fentry); Debian's cloud kernels have
//! both, and 6.1 lacks some tracepoints 6.18 has, so these VMs are where sockpath's hook
//! fallbacks get exercised. Everything is built on the host; the VM only runs commands.
//!
//! Layout under target/vm/: apt/<suite>/ (the runner's own apt configuration, sources and
//! package lists per Debian suite), debs/ (downloaded packages), kernels/<package>_<version>/
//! (their unpacked contents), and per kernel <label>/ with initramfs.cpio.gz, console.log,
//! probes.json (`sockpath probes --json`) and summary.txt.

mod apt;
mod artifacts;
mod commands;
mod debian;
mod init_script;
mod initramfs;
mod modules;
mod packages;
mod qemu;
mod report;
mod summary;

use std::{fmt::Write as _, fs, path::Path, time::Duration};

use anyhow::{anyhow, Context as _};

use crate::cmd::root;
use commands::{GuestCommand, Kind};
use debian::{Kernel, KernelSpec};
use report::GuestReport;
use summary::{companions_note, counts, table};

pub use packages::vm_packages;

/// Boots after a guest lockup or panic before the kernel's run fails. TCG guests have wedged (a
/// CPU stuck in the kernel for minutes) on 6.1, and 6.12 once panicked on an int3 at a patched
/// tracepoint site, in one boot of several CI runs, never twice in a row so far; each boot
/// after one costs the whole kernel's run again (about 12 minutes).
const BOOTS_AFTER_LOCKUP: usize = 2;

#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// A kernel to boot (repeatable): 5.10 (bullseye), 6.1 (bookworm), 6.12, sid (unstable: the
    /// newest Debian ships). Default: the matrix `cargo xtask test` runs (see debian.rs).
    #[arg(long = "kernel", value_name = "SERIES")]
    kernels: Vec<String>,
    /// Seconds one VM may run before qemu is killed.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
    /// Print the whole serial console, not only the sentinels and test results.
    #[arg(long, short)]
    verbose: bool,
    /// A shell command to run in the guest after `sockpath probes` (repeatable), e.g.
    /// `--sh 'sockpath watch --port 9 & sleep 30; bpftool prog show'`: its output is in the
    /// console log and the table.
    #[arg(long = "sh", value_name = "COMMAND")]
    shell: Vec<String>,
    /// Run no test executables (only `sockpath probes` and the --sh commands).
    #[arg(long)]
    no_tests: bool,
    /// Only resolve, download and unpack the kernels (into the cache under target/vm/): no
    /// build, no boot.
    #[arg(long)]
    fetch_only: bool,
    /// Arguments for every test executable, after `--` (libtest's: a name filter, --nocapture).
    #[arg(last = true)]
    test_args: Vec<String>,
}

impl Default for VmArgs {
    /// Every kernel, every test: what `cargo xtask test` runs.
    fn default() -> Self {
        Self {
            kernels: Vec::new(),
            timeout: 1800,
            verbose: false,
            shell: Vec::new(),
            no_tests: false,
            fetch_only: false,
            test_args: Vec::new(),
        }
    }
}

/// What happened with one kernel.
struct KernelRun {
    spec: KernelSpec,
    kernel: Option<Kernel>,
    /// Why the VM could not be prepared or booted.
    error: Option<String>,
    elapsed: Option<Duration>,
    timed_out: bool,
    /// The guest kernel locked up (qemu killed early).
    locked_up: bool,
    /// An earlier boot of this kernel locked up; this is the second.
    second_boot: bool,
    report: GuestReport,
}

impl KernelRun {
    fn finished(&self) -> bool {
        self.error.is_none() && !self.timed_out && !self.locked_up && self.report.done
    }
}

pub fn run(args: VmArgs) -> anyhow::Result<()> {
    vm_packages()?;
    let specs: Vec<KernelSpec> = if args.kernels.is_empty() {
        debian::default_matrix()
    } else {
        args.kernels
            .iter()
            .map(|k| debian::spec(k))
            .collect::<anyhow::Result<_>>()?
    };
    let vm_root = root().join("target/vm");
    if args.fetch_only {
        for spec in &specs {
            let k =
                debian::fetch(spec, &vm_root).with_context(|| format!("kernel {}", spec.label))?;
            eprintln!(
                "xtask vm: kernel {}: {} {} ({}){}: {}",
                spec.label,
                k.package,
                k.version,
                k.release,
                companions_note(&k),
                k.vmlinuz.display()
            );
        }
        return Ok(());
    }
    let artifacts = artifacts::build()?;
    let files = commands::guest_files(&artifacts);
    let mut cmds = commands::guest_commands(&artifacts, &args.test_args);
    if args.no_tests {
        cmds.retain(|c| c.kind != Kind::Test);
    }
    // After probes, before the tests.
    let at = cmds.iter().take_while(|c| c.kind == Kind::Run).count();
    for (i, sh) in args.shell.iter().enumerate() {
        cmds.insert(at + i, commands::shell(i + 1, sh));
    }

    let mut runs = Vec::new();
    for spec in specs {
        let mut r = boot_kernel(spec, false, &files, &cmds, &vm_root, &args);
        // A kernel that locks up on every boot fails the run. Each locked-up boot's console
        // stays in console-lockup-N.log.
        for boot in 1..=BOOTS_AFTER_LOCKUP {
            if !r.locked_up {
                break;
            }
            eprintln!(
                "xtask vm: kernel {}: the emulated kernel locked up (a CPU stuck for minutes) \
                 or panicked; booting it again ({boot} of {BOOTS_AFTER_LOCKUP})",
                spec.label
            );
            let dir = vm_root.join(spec.label);
            let _ = fs::rename(
                dir.join("console.log"),
                dir.join(format!("console-lockup-{boot}.log")),
            );
            r = boot_kernel(spec, true, &files, &cmds, &vm_root, &args);
        }
        let table = table(&r, &cmds, &vm_root);
        eprintln!("{table}");
        let dir = vm_root.join(spec.label);
        if dir.is_dir() {
            let _ = fs::write(dir.join("summary.txt"), &table);
        }
        runs.push(r);
    }

    let (mut passed, mut failed) = (0, 0);
    for r in &runs {
        let (p, f) = counts(r, &cmds);
        passed += p;
        failed += f;
    }
    let mut overview = String::from("xtask vm:");
    for r in &runs {
        let _ = write!(
            overview,
            " {} {};",
            r.spec.label,
            if r.finished() && counts(r, &cmds).1 == 0 {
                "passed"
            } else if r.finished() {
                "failed"
            } else {
                "did not finish"
            }
        );
    }
    eprintln!("{}", overview.trim_end_matches(';'));
    // The plain closing line test-result readers understand.
    println!("vm: {passed} passed, {failed} failed");
    if failed > 0 || runs.iter().any(|r| !r.finished()) {
        return Err(anyhow!(
            "{failed} failed in the VMs (logs under {})",
            vm_root.display()
        ));
    }
    Ok(())
}

fn boot_kernel(
    spec: KernelSpec,
    second_boot: bool,
    files: &[commands::GuestFile],
    cmds: &[GuestCommand],
    vm_root: &Path,
    args: &VmArgs,
) -> KernelRun {
    let mut r = KernelRun {
        spec,
        kernel: None,
        error: None,
        elapsed: None,
        timed_out: false,
        locked_up: false,
        second_boot,
        report: GuestReport::default(),
    };
    if let Err(e) = run_kernel(&mut r, files, cmds, vm_root, args) {
        r.error = Some(format!("{e:#}"));
    }
    r
}

fn run_kernel(
    r: &mut KernelRun,
    files: &[commands::GuestFile],
    cmds: &[GuestCommand],
    vm_root: &Path,
    args: &VmArgs,
) -> anyhow::Result<()> {
    let label = r.spec.label;
    eprintln!("xtask vm: kernel {label}: resolving {}", r.spec.metapackage);
    let kernel = debian::fetch(&r.spec, vm_root)?;
    eprintln!(
        "xtask vm: kernel {label}: {} {} ({}){}, unpacked in {}",
        kernel.package,
        kernel.version,
        kernel.release,
        companions_note(&kernel),
        kernel.root.display()
    );
    r.kernel = Some(kernel.clone());
    let dir = vm_root.join(label);
    fs::create_dir_all(&dir)?;
    for c in cmds {
        if let Some(f) = c.save_as {
            // A stale copy from an earlier run must not pass for this run's output.
            let _ = fs::remove_file(dir.join(f));
        }
    }
    let initrd = initramfs::build(&kernel, files, cmds, &dir).context("building the initramfs")?;
    let log = dir.join("console.log");
    let verbose = args.verbose;
    let boot = qemu::boot(
        &kernel.vmlinuz,
        &initrd,
        &log,
        Duration::from_secs(args.timeout),
        |line| {
            if verbose || progress_line(line) {
                eprintln!("[{label}] {line}");
            }
        },
    )?;
    r.elapsed = Some(boot.elapsed);
    r.timed_out = boot.timed_out;
    r.locked_up = boot.locked_up;
    r.report = report::parse(&boot.console);
    for c in cmds {
        let (Some(file), Some(res)) = (
            c.save_as,
            r.report.commands.iter().find(|x| x.name == c.name),
        ) else {
            continue;
        };
        let mut text = res.output.join("\n");
        text.push('\n');
        fs::write(dir.join(file), text)?;
    }
    Ok(())
}

/// The console lines worth showing while a VM runs.
fn progress_line(l: &str) -> bool {
    let t = l.trim();
    t.contains(init_script::SENTINEL)
        || (t.starts_with("test ") && t.contains(" ... "))
        || t.starts_with("test result:")
        || t.contains("panicked at")
        || t.contains("Kernel panic")
        || l.starts_with("qemu: ")
}
