//! What watches the loaded port during a trial: nothing, sockpath filtering everything out
//! (watching another port), sockpath watching the loaded port (every packet, or one in 100
//! with `--sample 100`), or tcpdump capturing it.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Condition {
    Nothing,
    #[value(name = "other-port")]
    SockpathOtherPort,
    #[value(name = "loaded-port")]
    SockpathLoadedPort,
    /// `sockpath watch --sample 100` on the loaded port.
    #[value(name = "sampled")]
    SockpathSampled,
    Tcpdump,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Condition::Nothing,
        Condition::SockpathOtherPort,
        Condition::SockpathLoadedPort,
        Condition::SockpathSampled,
        Condition::Tcpdump,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Nothing => "nothing attached",
            Condition::SockpathOtherPort => "sockpath, other port",
            Condition::SockpathLoadedPort => "sockpath, loaded port",
            Condition::SockpathSampled => "sockpath --sample 100, loaded port",
            Condition::Tcpdump => "tcpdump, loaded port",
        }
    }
}

/// What a watcher cost, measured at the end of a trial.
#[derive(Clone, Debug, Default)]
pub struct Cost {
    /// user + system CPU seconds of the watching process during the trial.
    pub cpu_s: Option<f64>,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: Option<u64>,
    /// sockpath's summary at exit.
    pub summary: Option<Value>,
    /// sockpath's start object (attach_ms, hooks).
    pub start: Option<Value>,
    /// Packets tcpdump said the kernel dropped for it.
    pub tcpdump_dropped: Option<u64>,
}

pub struct Running {
    child: Child,
    cpu_at_start: f64,
    last_line: Arc<Mutex<Option<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    start: Option<Value>,
    capture: Option<PathBuf>,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// VmHWM of a process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    rss_field(pid, "VmHWM:")
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    rss_field(pid, "VmRSS:")
}

fn rss_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

impl Running {
    /// Starts what `c` needs and returns once it is attached (sockpath's start line, tcpdump's
    /// "listening on").
    pub fn start(
        c: Condition,
        sockpath: &Path,
        loaded: u16,
        other: u16,
        dir: &Path,
    ) -> anyhow::Result<Option<Self>> {
        match c {
            Condition::Nothing => Ok(None),
            Condition::SockpathOtherPort | Condition::SockpathLoadedPort => {
                let port = if c == Condition::SockpathLoadedPort {
                    loaded
                } else {
                    other
                };
                Ok(Some(Self::sockpath(
                    sockpath,
                    &["--port", &port.to_string()],
                )?))
            }
            Condition::SockpathSampled => Ok(Some(Self::sockpath(
                sockpath,
                &["--port", &loaded.to_string(), "--sample", "100"],
            )?)),
            Condition::Tcpdump => Ok(Some(Self::tcpdump(loaded, dir)?)),
        }
    }

    pub fn sockpath(bin: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::sockpath_only(bin, args, None)
    }

    /// sockpath with only `programs` attached (SOCKPATH_ONLY_PROGRAMS), or all of them.
    pub fn sockpath_only(
        bin: &Path,
        args: &[&str],
        programs: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        if let Some(p) = programs {
            // Its warning that journeys are incomplete is expected here.
            cmd.env("SOCKPATH_ONLY_PROGRAMS", p).stderr(Stdio::null());
        } else {
            cmd.stderr(Stdio::inherit());
        }
        let mut child = cmd
            .args(["watch", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        out.read_line(&mut first)?;
        let start: Value = serde_json::from_str(&first)
            .map_err(|e| anyhow!("sockpath did not start ({e}): {first:?}"))?;
        let last_line = Arc::new(Mutex::new(None));
        let l2 = last_line.clone();
        // Journeys are read in large chunks and thrown away, keeping only the tail: the
        // summary is the last line. (Reading line by line in this unoptimised build was slower
        // than sockpath writes, and the full pipe made sockpath lose events.)
        let reader = thread::spawn(move || {
            let mut chunk = vec![0u8; 1 << 20];
            let mut tail: Vec<u8> = Vec::new();
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&chunk[..n]);
                        if tail.len() > 8192 {
                            tail.drain(..tail.len() - 8192);
                        }
                    }
                }
            }
            let text = String::from_utf8_lossy(&tail);
            if let Some(l) = text
                .lines()
                .rev()
                .find(|l| l.starts_with("{\"type\":\"summary\""))
            {
                *l2.lock().unwrap() = Some(l.to_string());
            }
        });
        let pid = child.id();
        Ok(Self {
            cpu_at_start: cpu_seconds(pid).unwrap_or(0.0),
            child,
            last_line,
            reader: Some(reader),
            start: Some(start),
            capture: None,
        })
    }

    fn tcpdump(port: u16, dir: &Path) -> anyhow::Result<Self> {
        let file = dir.join("tcpdump.pcap");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-w"])
            .arg(&file)
            .args(["port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => continue,
                _ => return Err(anyhow!("tcpdump did not start")),
            }
        }
        // At exit tcpdump says "N packets dropped by kernel": its own lost events.
        let last_line = Arc::new(Mutex::new(None));
        let l2 = last_line.clone();
        let reader = thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if l.contains("dropped by kernel") {
                    *l2.lock().unwrap() = Some(l);
                }
            }
        });
        let pid = child.id();
        Ok(Self {
            cpu_at_start: cpu_seconds(pid).unwrap_or(0.0),
            child,
            last_line,
            reader: Some(reader),
            start: None,
            capture: Some(file),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Measures, then stops it (SIGINT, as Ctrl-C).
    pub fn stop(mut self) -> anyhow::Result<Cost> {
        let pid = self.child.id();
        let cpu = cpu_seconds(pid).map(|c| c - self.cpu_at_start);
        let peak = peak_rss_kib(pid);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(anyhow!("pid {pid} did not stop"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(f) = &self.capture {
            let _ = std::fs::remove_file(f);
        }
        let last = self.last_line.lock().unwrap().clone();
        let (summary, dropped) = if self.capture.is_some() {
            let n = last
                .as_deref()
                .and_then(|l| l.split_whitespace().next()?.parse().ok());
            (None, n)
        } else {
            (
                last.as_deref().and_then(|l| serde_json::from_str(l).ok()),
                None,
            )
        };
        Ok(Cost {
            cpu_s: cpu,
            peak_rss_kib: peak,
            summary,
            start: self.start.take(),
            tcpdump_dropped: dropped,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
