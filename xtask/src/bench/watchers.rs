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

use super::procstat::{bpf_links_of, bpftrace_programs_loaded};
pub use super::procstat::{cpu_seconds, map_bytes, peak_rss_kib, rss_kib};

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
    /// `sockpath stats` on the loaded port (counts kept in the kernel).
    #[value(name = "stats")]
    SockpathStats,
    /// One bpftrace program on netif_receive_skb, rejecting everything.
    #[value(name = "bpftrace-one")]
    BpftraceOne,
    /// bpftrace programs on each of sockpath's per-packet hooks, rejecting everything.
    #[value(name = "bpftrace-six")]
    BpftraceSix,
    Tcpdump,
}

/// The bpftrace one-liner a reader might run instead: a filter no packet passes.
const BPFTRACE_ONE: &str =
    "tracepoint:net:netif_receive_skb /args->len == 1234567/ { @c = count(); }";

/// The same on every per-packet hook sockpath attaches on this kind of kernel (device receive,
/// the NET_RX softirq marks, transmit, the socket queue, the read), each rejecting everything.
const BPFTRACE_SIX: &str =
    "tracepoint:net:netif_receive_skb /args->len == 1234567/ { @a = count(); } \
     tracepoint:irq:softirq_entry /args->vec == 1234567/ { @b = count(); } \
     tracepoint:irq:softirq_exit /args->vec == 1234567/ { @c = count(); } \
     tracepoint:net:net_dev_queue /args->len == 1234567/ { @d = count(); } \
     tracepoint:sock:sk_data_ready /args->family == 12345/ { @e = count(); } \
     tracepoint:sock:sock_recv_length /args->ret == 1234567/ { @f = count(); }";

impl Condition {
    pub const ALL: [Condition; 8] = [
        Condition::Nothing,
        Condition::SockpathOtherPort,
        Condition::BpftraceOne,
        Condition::BpftraceSix,
        Condition::SockpathLoadedPort,
        Condition::SockpathSampled,
        Condition::SockpathStats,
        Condition::Tcpdump,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Nothing => "nothing attached",
            Condition::SockpathOtherPort => "sockpath, other port",
            Condition::SockpathLoadedPort => "sockpath, loaded port",
            Condition::SockpathSampled => "sockpath --sample 100, loaded port",
            Condition::SockpathStats => "sockpath stats, loaded port",
            Condition::BpftraceOne => "bpftrace, netif_receive_skb rejecting all",
            Condition::BpftraceSix => "bpftrace, sockpath's 6 per-packet hooks rejecting all",
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
    /// Memory of the BPF maps the process held (bpftool's bytes_memlock), bytes.
    pub map_bytes: Option<u64>,
}

pub struct Running {
    child: Child,
    cpu_at_start: f64,
    last_line: Arc<Mutex<Option<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    start: Option<Value>,
    capture: Option<PathBuf>,
    /// What to read at stop: sockpath's summary line, tcpdump's drops, or nothing (bpftrace).
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sockpath,
    Tcpdump,
    Bpftrace,
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
            Condition::SockpathStats => Ok(Some(Self::sockpath_cmd(
                sockpath,
                "stats",
                &["--port", &loaded.to_string()],
                None,
            )?)),
            Condition::BpftraceOne => Ok(Some(Self::bpftrace(BPFTRACE_ONE, 1)?)),
            Condition::BpftraceSix => Ok(Some(Self::bpftrace(BPFTRACE_SIX, 6)?)),
            Condition::Tcpdump => Ok(Some(Self::tcpdump(loaded, dir)?)),
        }
    }

    /// bpftrace running `program`, returned once it said "Attaching N probes..." and that
    /// many programs of its are loaded (bpftool).
    fn bpftrace(program: &str, probes: usize) -> anyhow::Result<Self> {
        let mut child = Command::new("bpftrace")
            .args(["-e", program])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace (apt-get install bpftrace)")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let want = format!("Attaching {probes} probe");
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains(&want) => break,
                Some(Ok(_)) => continue,
                _ => return Err(anyhow!("bpftrace did not attach {probes} probes")),
            }
        }
        let pid = child.id();
        // The line comes before the attach calls: wait until every probe is attached.
        let deadline = Instant::now() + Duration::from_secs(10);
        while bpf_links_of(pid) < probes {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(anyhow!("bpftrace attached fewer than {probes} probes"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let reader = thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(Self {
            cpu_at_start: cpu_seconds(pid).unwrap_or(0.0),
            child,
            last_line: Arc::new(Mutex::new(None)),
            reader: Some(reader),
            start: None,
            capture: None,
            kind: Kind::Bpftrace,
        })
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
        Self::sockpath_cmd(bin, "watch", args, programs)
    }

    /// `sockpath COMMAND --json ARGS` (watch or stats).
    fn sockpath_cmd(
        bin: &Path,
        command: &str,
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
            .args([command, "--json"])
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
            if let Some(l) = text.lines().rev().find(|l| {
                l.starts_with("{\"type\":\"summary\"") || l.starts_with("{\"type\":\"total\"")
            }) {
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
            kind: Kind::Sockpath,
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
            kind: Kind::Tcpdump,
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
        let maps = if self.kind == Kind::Tcpdump {
            None
        } else {
            map_bytes(pid)
        };
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
        if self.kind == Kind::Bpftrace {
            // Gone before the next trial: no program of its left loaded.
            let deadline = Instant::now() + Duration::from_secs(10);
            while bpf_links_of(pid) > 0 || bpftrace_programs_loaded() {
                if Instant::now() > deadline {
                    return Err(anyhow!("bpftrace's programs stayed loaded"));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
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
            map_bytes: maps,
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
