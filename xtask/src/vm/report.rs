//! Reading a guest's console log: the sentinel lines /init printed, libtest's per-test lines,
//! and the first lines of each failure. Pure functions, tested without a VM.

use std::collections::BTreeMap;

use super::{commands::Kind, init_script::SENTINEL};

#[derive(Debug, Default, Clone)]
pub struct GuestReport {
    /// `uname -r` in the guest.
    pub release: Option<String>,
    /// /init reached its end (`SOCKPATH-VM: DONE`).
    pub done: bool,
    pub setup_errors: Vec<String>,
    pub commands: Vec<CommandResult>,
}

#[derive(Debug, Clone)]
pub struct CommandResult {
    pub kind: Kind,
    pub name: String,
    /// None: the command started and its end never came (the VM stopped or was killed).
    pub exit: Option<i32>,
    /// Console lines between its begin and end sentinels, kernel messages left out.
    pub output: Vec<String>,
    /// libtest's `test NAME ... ok|FAILED|ignored`, in order.
    pub tests: Vec<(String, Outcome)>,
    /// For failed tests: the panic message (first lines).
    pub failures: BTreeMap<String, String>,
    /// The guest's uptime in seconds when it began and when it ended (`/proc/uptime`).
    pub uptime: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Ignored,
}

impl CommandResult {
    pub fn passed(&self) -> bool {
        self.exit == Some(0)
    }

    /// How long it ran, by the guest's clock.
    pub fn secs(&self) -> Option<f64> {
        self.uptime.map(|(a, b)| b - a)
    }
}

/// A kernel message (`[   12.345678] ...`, printk time stamps are on in Debian's configs):
/// the console interleaves them with the commands' output.
pub fn is_kernel_line(l: &str) -> bool {
    let Some(rest) = l.trim_start().strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

pub fn parse(console: &str) -> GuestReport {
    let mut r = GuestReport::default();
    let mut current: Option<CommandResult> = None;
    for line in console.lines() {
        let Some(at) = line.find(SENTINEL) else {
            if let Some(c) = current.as_mut() {
                if !is_kernel_line(line) {
                    c.output.push(line.to_string());
                }
            }
            continue;
        };
        let words: Vec<&str> = line[at + SENTINEL.len()..].split_whitespace().collect();
        match words.as_slice() {
            ["kernel", release] => r.release = Some(release.to_string()),
            ["DONE"] => r.done = true,
            ["setup-error", rest @ ..] => r.setup_errors.push(rest.join(" ")),
            ["begin", kind, name] => {
                if let Some(kind) = Kind::parse(kind) {
                    if let Some(prev) = current.take() {
                        r.commands.push(finish(prev));
                    }
                    current = Some(CommandResult {
                        kind,
                        name: name.to_string(),
                        exit: None,
                        output: Vec::new(),
                        tests: Vec::new(),
                        failures: BTreeMap::new(),
                        uptime: None,
                    });
                }
            }
            [_, name, exit, rest @ ..] => {
                let Some(code) = exit.strip_prefix("exit=") else {
                    continue;
                };
                if let Some(mut c) = current.take_if(|c| c.name == *name) {
                    c.exit = code.parse().ok();
                    c.uptime = rest
                        .iter()
                        .find_map(|w| w.strip_prefix("uptime="))
                        .and_then(uptime_span);
                    // The blank line /init printed before the sentinel.
                    if c.output.last().is_some_and(|l| l.trim().is_empty()) {
                        c.output.pop();
                    }
                    r.commands.push(finish(c));
                }
            }
            _ => {}
        }
    }
    if let Some(c) = current.take() {
        r.commands.push(finish(c));
    }
    r
}

/// `12.34-56.78`: the guest's uptime before and after a command.
pub fn uptime_span(s: &str) -> Option<(f64, f64)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (f64, f64) = (a.parse().ok()?, b.parse().ok()?);
    (b >= a).then_some((a, b))
}

fn finish(mut c: CommandResult) -> CommandResult {
    if c.kind == Kind::Test {
        c.tests = libtest_results(&c.output);
        c.failures = libtest_failures(&c.output);
    }
    c
}

/// `test name ... ok`. With one test thread a test's own output (`--nocapture`) may land
/// between the name and the result, so the result is looked for on the same line only and a
/// test seen without one is left out (its command's exit code still counts).
pub fn libtest_results(lines: &[String]) -> Vec<(String, Outcome)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            let outcome = match result.trim() {
                "ok" => Outcome::Ok,
                "FAILED" => Outcome::Failed,
                r if r.starts_with("ignored") => Outcome::Ignored,
                _ => return None,
            };
            Some((name.trim().to_string(), outcome))
        })
        .collect()
}

/// From libtest's `---- NAME stdout ----` sections: the panic location and message.
pub fn libtest_failures(lines: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(name) = l
            .strip_prefix("---- ")
            .and_then(|s| s.strip_suffix(" stdout ----"))
        else {
            i += 1;
            continue;
        };
        let mut section = Vec::new();
        i += 1;
        while i < lines.len() {
            let t = lines[i].trim();
            if (t.starts_with("---- ") && t.ends_with(" ----")) || t == "failures:" {
                break;
            }
            section.push(lines[i].clone());
            i += 1;
        }
        out.insert(name.to_string(), panic_message(&section));
    }
    out
}

/// `thread 'x' panicked at file:line:col:` and the message lines after it (at most five), or
/// the section's first lines when there is no panic line.
fn panic_message(section: &[String]) -> String {
    let start = section
        .iter()
        .position(|l| l.contains("panicked at"))
        .unwrap_or(0);
    section[start..]
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .take(6)
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.000000] Linux version 6.1.0-56-cloud-amd64
SOCKPATH-VM: kernel 6.1.0-56-cloud-amd64
SOCKPATH-VM: setup-error insmod veth
SOCKPATH-VM: begin run probes
kernel 6.1.0: all hooks attached in 12 ms
[   3.100000] random kernel message
stage  kind hook

SOCKPATH-VM: run probes exit=0 uptime=2.50-40.25
SOCKPATH-VM: begin test tcp_loopback

running 2 tests
test a_works ... ok
test b_breaks ... FAILED

failures:

---- b_breaks stdout ----
thread 'b_breaks' panicked at tests/tests/b.rs:10:5:
sockpath did not start: no tracepoint
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

failures:
    b_breaks

test result: FAILED. 1 passed; 1 failed; 0 ignored

SOCKPATH-VM: test tcp_loopback exit=101
SOCKPATH-VM: begin test udp
running 1 test
";

    #[test]
    fn sentinels_tests_and_failures() {
        let r = parse(LOG);
        assert_eq!(r.release.as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert!(!r.done);
        assert_eq!(r.setup_errors, ["insmod veth"]);
        assert_eq!(r.commands.len(), 3);
        let probes = &r.commands[0];
        assert_eq!(probes.exit, Some(0));
        assert_eq!(probes.uptime, Some((2.5, 40.25)));
        assert_eq!(probes.secs(), Some(37.75));
        assert_eq!(
            probes.output,
            [
                "kernel 6.1.0: all hooks attached in 12 ms",
                "stage  kind hook"
            ]
        );
        let t = &r.commands[1];
        assert_eq!(t.exit, Some(101));
        // An end sentinel without times (an older /init) still ends the command.
        assert_eq!(t.secs(), None);
        assert_eq!(
            t.tests,
            [
                ("a_works".to_string(), Outcome::Ok),
                ("b_breaks".to_string(), Outcome::Failed)
            ]
        );
        assert_eq!(
            t.failures["b_breaks"],
            "thread 'b_breaks' panicked at tests/tests/b.rs:10:5:\nsockpath did not start: no tracepoint"
        );
        // Started, never ended: the VM stopped under it.
        assert_eq!(r.commands[2].name, "udp");
        assert_eq!(r.commands[2].exit, None);
    }

    #[test]
    fn uptime_spans() {
        assert_eq!(uptime_span("10.00-70.50"), Some((10.0, 70.5)));
        assert_eq!(uptime_span("70.00-10.00"), None);
        assert_eq!(uptime_span("10.00-"), None);
        assert_eq!(uptime_span("x-1"), None);
    }

    #[test]
    fn kernel_lines() {
        assert!(is_kernel_line("[    3.100000] veth: loaded"));
        assert!(!is_kernel_line("[profile] x"));
        assert!(!is_kernel_line("stage kind"));
    }
}
