//! The traffic the benchmark measures, all on loopback: small UDP datagrams as fast as iperf3
//! sends them, a bulk TCP stream (iperf3), and many short TCP connections (connect, send, close)
//! from a generator in this process.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Load {
    /// 64-byte UDP datagrams, `iperf3 -u -b 0 -l 64`.
    #[value(name = "udp")]
    SmallUdp,
    /// One TCP stream, `iperf3`.
    #[value(name = "bulk")]
    BulkTcp,
    /// Short TCP connections: connect, send a byte, the server reads it and closes, close.
    #[value(name = "short")]
    ShortTcp,
}

impl Load {
    pub const ALL: [Load; 3] = [Load::SmallUdp, Load::BulkTcp, Load::ShortTcp];

    pub fn name(self) -> &'static str {
        match self {
            Load::SmallUdp => "small UDP (64 B)",
            Load::BulkTcp => "bulk TCP stream",
            Load::ShortTcp => "short TCP connections",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Load::SmallUdp => "packets/s",
            Load::BulkTcp => "Gbit/s",
            Load::ShortTcp => "connections/s",
        }
    }
}

/// What a load achieved.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// In the load's unit.
    pub value: f64,
}

fn iperf3(port: u16, client_args: &[&str], secs: u64) -> anyhow::Result<Value> {
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s (apt-get install iperf3)")?;
    // The server needs a moment to listen. Not probed by connecting: `-1` serves one client
    // and a probe would be it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listening(port) {
        if Instant::now() > deadline {
            let _ = server.kill();
            return Err(anyhow!("iperf3 server did not start on port {port}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-J",
            "-t",
            &secs.to_string(),
        ])
        .args(client_args)
        .output()
        .context("running iperf3 -c")?;
    let _ = server.wait();
    let v: Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    if let Some(e) = v["error"].as_str() {
        return Err(anyhow!("iperf3: {e}"));
    }
    Ok(v)
}

/// Whether a TCP socket listens on `port` (/proc/net/tcp: local address `0100007F:PORT`,
/// state 0A).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
        })
    })
}

/// The iperf3 control connection used the same port once; the load is the run itself.
pub fn run(load: Load, port: u16, secs: u64) -> anyhow::Result<Rate> {
    match load {
        Load::SmallUdp => {
            let v = iperf3(port, &["-u", "-b", "0", "-l", "64"], secs)?;
            // Datagrams the receiver got per second (the sender may send more than the
            // receiving socket can take).
            let recv = &v["end"]["sum_received"];
            let secs = recv["seconds"].as_f64().unwrap_or(secs as f64);
            let received = recv["bytes"].as_f64().unwrap_or(0.0) / 64.0;
            Ok(Rate {
                value: received / secs,
            })
        }
        Load::BulkTcp => {
            let v = iperf3(port, &[], secs)?;
            let bps = v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0);
            Ok(Rate { value: bps / 1e9 })
        }
        Load::ShortTcp => short_connections(port, secs),
    }
}

/// 64-byte UDP datagrams at `pps` (iperf3 paces by payload bits per second).
pub fn small_udp_at(port: u16, secs: u64, pps: f64) -> anyhow::Result<Rate> {
    let bits = format!("{:.0}", pps * 64.0 * 8.0);
    let v = iperf3(port, &["-u", "-b", &bits, "-l", "64"], secs)?;
    let recv = &v["end"]["sum_received"];
    let secs = recv["seconds"].as_f64().unwrap_or(secs as f64);
    let received = recv["bytes"].as_f64().unwrap_or(0.0) / 64.0;
    Ok(Rate {
        value: received / secs,
    })
}

/// One client thread and one server thread. The server closes first, so the TIME_WAIT sockets
/// are the server's and the client never runs out of ephemeral ports.
fn short_connections(port: u16, secs: u64) -> anyhow::Result<Rate> {
    let listener =
        TcpListener::bind(("127.0.0.1", port)).context("binding the short-connection server")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = thread::spawn(move || {
        let mut buf = [0u8; 16];
        for conn in listener.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(mut s) = conn {
                let _ = s.read(&mut buf);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut n = 0u64;
    let mut buf = [0u8; 16];
    while Instant::now() < deadline {
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
        c.write_all(b"x")?;
        // Until the server's close.
        let _ = c.read(&mut buf);
        n += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    // Wake the accept loop so it sees the flag.
    let _ = TcpStream::connect(("127.0.0.1", port));
    let _ = server.join();
    Ok(Rate {
        value: n as f64 / elapsed,
    })
}
