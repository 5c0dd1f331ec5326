//! Booting one kernel under qemu with TCG and streaming its serial console to a log file.
//!
//! KVM guests fail on this kind of machine (see shared/KERNEL-NOTES.md: `-cpu host` trips an
//! MSR assertion, `-cpu kvm64` hangs in firmware), so the VM always uses TCG with `-cpu max`.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::cmd::show;

#[derive(Debug)]
pub struct Boot {
    /// Everything the serial console printed (also in the log file).
    pub console: String,
    pub elapsed: Duration,
    /// qemu was killed because the VM ran past the time limit.
    pub timed_out: bool,
    /// qemu was killed because the guest kernel reported a CPU stuck for `LOCKUP_GIVE_UP_S`.
    pub locked_up: bool,
}

/// A guest CPU stuck in the kernel this long will not come back. Under TCG the emulated
/// kernel has been seen to wedge both CPUs (soft lockups on every CPU, the RCU grace-period
/// thread starved) in a test that passes on every other boot; the guest's own per-test
/// timeout cannot run then, and the VM would sit until the time limit.
const LOCKUP_GIVE_UP_S: u64 = 120;

/// The guest kernel panicked. Under TCG this has been the emulator's fault, not the kernel's:
/// 6.12 took an `int3` trap at a tracepoint site in handle_softirqs that the kernel had finished
/// patching (a stale translation of the patched code), while tests attached and detached.
pub fn guest_panicked(line: &str) -> bool {
    line.contains("Kernel panic - not syncing")
}

/// Seconds from `watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [sockpath:157]`.
pub fn lockup_seconds(line: &str) -> Option<u64> {
    let rest = line.split("soft lockup - CPU#").nth(1)?;
    let secs = rest.split(" stuck for ").nth(1)?.split("s!").next()?;
    secs.trim().parse().ok()
}

/// Boots `vmlinuz` with `initrd`, writing the console to `log` as it arrives and handing each
/// line to `on_line`; kills qemu after `timeout`.
pub fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    log: &Path,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Boot> {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        // panic=-1 with -no-reboot: a kernel panic (or /init dying) ends qemu at once instead
        // of waiting for the timeout.
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .args(["-nographic", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("+ {}", show(&c));
    let started = Instant::now();
    let mut child = c
        .spawn()
        .context("starting qemu-system-x86_64 (package qemu-system-x86)")?;
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;

    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().context("qemu has no stdout")?;
    let stderr = child.stderr.take().context("qemu has no stderr")?;
    let tx2 = tx.clone();
    let readers = [
        thread::spawn(move || forward_lines(stdout, &tx, "")),
        // qemu's own complaints go in the same log, marked.
        thread::spawn(move || forward_lines(stderr, &tx2, "qemu: ")),
    ];

    let deadline = started + timeout;
    let mut console = String::new();
    let mut timed_out = false;
    let mut locked_up = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                file.write_all(line.as_bytes())?;
                file.write_all(b"\n")?;
                file.flush()?;
                on_line(&line);
                console.push_str(&line);
                console.push('\n');
                if lockup_seconds(&line).is_some_and(|s| s >= LOCKUP_GIVE_UP_S) {
                    locked_up = true;
                    let _ = child.kill();
                    break;
                }
                if guest_panicked(&line) {
                    // qemu ends by itself (panic=-1, -no-reboot); the rest of the console
                    // is the panic's.
                    locked_up = true;
                }
            }
            // Both pipes closed: qemu is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    timed_out = true;
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    // Lines that arrived between the timeout and qemu's end.
    for line in rx.try_iter() {
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        console.push_str(&line);
        console.push('\n');
    }
    if timed_out {
        writeln!(file, "xtask vm: killed qemu after {} s", timeout.as_secs())?;
    }
    if locked_up {
        writeln!(
            file,
            "xtask vm: the guest locked up (a CPU stuck for {LOCKUP_GIVE_UP_S} s) or panicked"
        )?;
    }
    Ok(Boot {
        console,
        elapsed: started.elapsed(),
        timed_out,
        locked_up,
    })
}

/// Sends each line (without the serial console's \r) to `tx`.
fn forward_lines(r: impl std::io::Read, tx: &mpsc::Sender<String>, prefix: &str) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                if tx.send(format!("{prefix}{line}")).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_lockup_lines_give_their_seconds() {
        assert_eq!(
            lockup_seconds(
                "[  124.627577] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [sockpath:157]"
            ),
            Some(45)
        );
        assert_eq!(lockup_seconds("test lifecycle ... ok"), None);
        assert!(guest_panicked(
            "[  648.161040] Kernel panic - not syncing: Fatal exception in interrupt"
        ));
        assert!(!guest_panicked("test panics_are_reported ... ok"));
        assert_eq!(
            lockup_seconds("rcu: INFO: rcu_preempt self-detected stall on CPU"),
            None
        );
    }
}
