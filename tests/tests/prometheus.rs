//! A real Prometheus server (Debian's `prometheus` package), started by the test on loopback
//! with a configuration and a storage folder of its own, scrapes the daemon's /metrics; what it
//! stored, read back through its HTTP query API, matches the traffic the test sent. Host only:
//! the VM guests carry no Prometheus.

use std::{
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sockpath_tests::{drop_reason, free_port, unique, Daemon, Netns};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// `GET path` on 127.0.0.1:`port`: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Percent-encodes a query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Scrapes 127.0.0.1:`target` every second.
    fn start(target: u16) -> Self {
        assert!(
            std::path::Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: apt-get install prometheus (cargo xtask setup does)"
        );
        let dir = std::env::temp_dir().join(format!(
            "sockpath-prometheus-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: sockpath\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(port, "/-/ready").is_none_or(|(s, _)| s != 200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The value of an instant query that gives one sample, if it gives one.
    fn value(&self, q: &str) -> Option<f64> {
        let (status, body) = get(self.port, &format!("/api/v1/query?query={}", encode(q)))?;
        assert_eq!(status, 200, "{q}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{q}: {body}");
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            [] => None,
            more => panic!("{q}: {} samples: {body}", more.len()),
        }
    }

    /// Waits until `q` is `want`; fails if it goes past it.
    fn wait_for(&self, q: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.value(q);
            if v == Some(want) {
                return;
            }
            assert!(
                v.is_none_or(|v| v < want),
                "{q} is {v:?}, more than the {want} expected"
            );
            assert!(
                Instant::now() < deadline,
                "{q} never reached {want} (last {v:?})\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_counts_that_match_the_traffic_sent() {
    let metrics = free_port();
    let watched = free_port();
    let d = Daemon::start(&[
        "--metrics",
        &format!("127.0.0.1:{metrics}"),
        "--metrics-port",
        &watched.to_string(),
    ]);
    // Attached for the metrics, though nobody watches.
    d.wait_for(0, true);
    let prom = Prometheus::start(metrics);
    prom.wait_for("up{job=\"sockpath\"}", 1.0);
    prom.wait_for("sockpath_attached", 1.0);
    prom.wait_for("sockpath_packets_matched_total", 0.0);

    // Datagrams to the metrics port in a namespace of the test's own (so no other packet is on
    // that port), each read by its receiver; then some to the same port once nobody is bound
    // there, each answered by ICMP port unreachable and dropped (NO_SOCKET).
    const N: usize = 37;
    const CLOSED: usize = 5;
    let ns = Netns::new("prom");
    ns.run(move || {
        let rx = UdpSocket::bind(("127.0.0.1", watched)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..N {
            tx.send_to(b"counted", ("127.0.0.1", watched)).unwrap();
            rx.recv(&mut buf).unwrap();
        }
        drop(rx);
        for _ in 0..CLOSED {
            tx.send_to(b"anyone?", ("127.0.0.1", watched)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let all = (N + CLOSED) as f64;
    prom.wait_for("sockpath_packets_matched_total", all);
    assert!(prom.value("sockpath_packets_seen_total").unwrap() >= all);
    // The in-kernel statistics of the metrics port, by outcome.
    let packets = |outcome: &str, reason: &str| {
        format!(
            "sockpath_packets_total{{port=\"{watched}\",proto=\"udp\",outcome=\"{outcome}\",reason=\"{reason}\"}}"
        )
    };
    prom.wait_for(&packets("matched", ""), all);
    prom.wait_for(&packets("queued", ""), N as f64);
    prom.wait_for(&packets("read", ""), N as f64);
    prom.wait_for(&packets("icmp_sent", ""), CLOSED as f64);
    prom.wait_for(&packets("dropped", drop_reason("NO_SOCKET")), CLOSED as f64);
    prom.wait_for(&packets("accepted", ""), 0.0);
    let latency = |stage: &str| {
        format!(
            "sockpath_stage_latency_seconds_count{{port=\"{watched}\",proto=\"udp\",stage=\"{stage}\"}}"
        )
    };
    prom.wait_for(&latency("device -> read"), N as f64);
    prom.wait_for(&latency("queue -> read"), N as f64);
    prom.wait_for(&latency("device -> drop"), CLOSED as f64);
    // Every read took under a second: all of them under that bound.
    prom.wait_for(
        &format!(
            "sockpath_stage_latency_seconds_bucket{{port=\"{watched}\",proto=\"udp\",stage=\"device -> read\",le=\"1.073741824\"}}"
        ),
        N as f64,
    );
    prom.wait_for("sockpath_events_lost_total", 0.0);
    // The API's `stats` request: the same counts, in the words of `sockpath stats --json`.
    let reply = d.exchange(&[br#"{"request":"stats"}"#], Duration::from_secs(2));
    let stats: Value = serde_json::from_str(&reply[0]).unwrap();
    assert_eq!(stats["type"], "stats", "{stats}");
    let port = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == watched && p["direction"] == "to")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(port["read"], N, "{port}");
    assert_eq!(port["icmp_sent"], CLOSED, "{port}");
    assert_eq!(
        port["drops"],
        serde_json::json!([[drop_reason("NO_SOCKET"), CLOSED]]),
        "{port}"
    );
    let (code, log) = d.stop_with(libc::SIGTERM);
    assert_eq!(code, Some(0), "{log}");
}
