//! The summary a kernel's run prints: a line per test with its time in the guest, the failures'
//! last lines, and where the VM's time went.

use std::{fmt::Write as _, path::Path, time::Duration};

use super::{
    commands::{GuestCommand, Kind},
    debian::Kernel,
    report::{GuestReport, Outcome},
    KernelRun,
};

/// (passed, failed): each libtest test counts once; a command without per-test lines (or one
/// that failed without a failed test, e.g. a crash) counts as one.
pub(super) fn counts(r: &KernelRun, cmds: &[GuestCommand]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for c in cmds {
        let Some(res) = r.report.commands.iter().find(|x| x.name == c.name) else {
            failed += 1;
            continue;
        };
        let ok = res.tests.iter().filter(|t| t.1 == Outcome::Ok).count();
        let bad = res.tests.iter().filter(|t| t.1 == Outcome::Failed).count();
        passed += ok;
        failed += bad;
        if res.tests.is_empty() && res.passed() {
            passed += 1;
        } else if !res.passed() && bad == 0 {
            failed += 1;
        }
    }
    if failed == 0 && !r.finished() {
        failed += 1;
    }
    (passed, failed)
}

pub(super) fn table(r: &KernelRun, cmds: &[GuestCommand], vm_root: &Path) -> String {
    let mut s = String::new();
    let label = r.spec.label;
    let _ = write!(s, "\nkernel {label}: ");
    match &r.kernel {
        Some(k) => {
            let _ = write!(s, "{} {}{}", k.package, k.version, companions_note(k));
        }
        None => s.push_str(r.spec.metapackage),
    }
    if let Some(rel) = &r.report.release {
        let _ = write!(s, " (uname -r {rel})");
    }
    if let Some(e) = r.elapsed {
        let _ = write!(s, ", VM ran {} s", e.as_secs());
    }
    if r.second_boot {
        s.push_str(", second boot (the first locked up)");
    }
    s.push_str(if r.timed_out {
        ", killed at the time limit\n"
    } else if r.locked_up {
        ", killed: the kernel locked up\n"
    } else if r.report.done {
        ", finished\n"
    } else if r.error.is_some() {
        "\n"
    } else {
        ", stopped before the end\n"
    });
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  ERROR {e}");
    }
    for e in &r.report.setup_errors {
        let _ = writeln!(s, "  guest set-up failed: {e}");
    }
    for c in cmds {
        let res = r.report.commands.iter().find(|x| x.name == c.name);
        let (mark, detail) = match res {
            None => ("-", " (not run)".to_string()),
            Some(x) => match x.exit {
                Some(0) => ("PASS", String::new()),
                Some(code) => ("FAIL", format!(" (exit {code}{})", exit_note(code))),
                None => ("FAIL", " (did not end)".to_string()),
            },
        };
        let took = res
            .and_then(|x| x.secs())
            .map(|t| format!(" [{t:.0} s]"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {mark:<5} {:<5} {}{took}{detail}",
            c.kind.as_str(),
            c.name
        );
        let Some(x) = res else { continue };
        for (name, outcome) in &x.tests {
            let m = match outcome {
                Outcome::Ok => "pass",
                Outcome::Failed => "FAIL",
                Outcome::Ignored => "skip",
            };
            let _ = writeln!(s, "        {m:<5} {name}");
            if let Some(msg) = x.failures.get(name) {
                for l in msg.lines() {
                    let _ = writeln!(s, "              {}", clip(l));
                }
            }
        }
        if c.show_output {
            for l in &x.output {
                let _ = writeln!(s, "        | {l}");
            }
        } else if c.kind == Kind::Run && !x.passed() {
            for l in x.output.iter().rev().take(5).rev() {
                let _ = writeln!(s, "              {}", clip(l));
            }
        }
    }
    if let Some(line) = time_line(r.elapsed, &r.report) {
        let _ = writeln!(s, "  {line}");
    }
    let dir = vm_root.join(label);
    let _ = writeln!(s, "  console: {}", dir.join("console.log").display());
    s
}

/// Where a VM's time went: from qemu's start to the first command (boot, /init's set-up), the
/// commands, and after the last (power-off), by the guest's clock for the commands.
fn time_line(elapsed: Option<Duration>, report: &GuestReport) -> Option<String> {
    let first = report.commands.first()?.uptime?.0;
    let last = report.commands.iter().rev().find_map(|c| c.uptime)?.1;
    let tests: f64 = report
        .commands
        .iter()
        .filter(|c| c.kind == Kind::Test)
        .filter_map(|c| c.secs())
        .sum();
    let mut s = format!(
        "time: {first:.0} s to the first command, {:.0} s in commands ({tests:.0} s in tests)",
        last - first
    );
    if let Some(e) = elapsed {
        let _ = write!(s, ", {:.0} s in qemu", e.as_secs_f64());
    }
    Some(s)
}

/// Debian 14's split layout: the packages unpacked with the image package.
pub(super) fn companions_note(k: &Kernel) -> String {
    if k.companions.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = k.companions.iter().map(|(p, _)| p.as_str()).collect();
    format!(" (with {})", names.join(", "))
}

fn exit_note(code: i32) -> &'static str {
    match code {
        // busybox timeout sends SIGTERM: the shell reports 128 + 15.
        143 => ", SIGTERM: the guest's per-command time limit",
        101 => ", a test failed",
        _ => "",
    }
}

/// Failure messages may hold whole JSON reports; the table keeps their beginning (the console
/// log has all of it).
fn clip(line: &str) -> String {
    const MAX: usize = 240;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{} ...", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::report;

    #[test]
    fn time_line_splits_boot_commands_and_tests() {
        let r = report::parse(
            "SOCKPATH-VM: begin run probes\n\
             SOCKPATH-VM: run probes exit=0 uptime=4.00-30.00\n\
             SOCKPATH-VM: begin test a\n\
             SOCKPATH-VM: test a exit=0 uptime=30.10-90.10\n\
             SOCKPATH-VM: begin test b\n\
             SOCKPATH-VM: test b exit=101 uptime=90.20-100.70\n",
        );
        assert_eq!(
            time_line(Some(Duration::from_secs(105)), &r).as_deref(),
            Some("time: 4 s to the first command, 97 s in commands (70 s in tests), 105 s in qemu")
        );
        assert_eq!(time_line(None, &report::parse("")), None);
    }
}
