//! Lost events at fixed small-UDP rates: the load tcpdump sustained in the side-by-side trials,
//! and fractions of it, with sockpath (every packet, and one in 100 with `--sample 100`) and with
//! tcpdump watching the loaded port. At full speed every watcher falls behind somewhere; this
//! says up to which rate each keeps everything.

use std::{path::Path, time::Duration};

use super::{
    loads,
    watchers::{Condition, Running},
};

/// Fractions of tcpdump's sustained rate that are offered.
const FRACTIONS: [f64; 3] = [0.25, 0.5, 1.0];

pub struct Row {
    pub offered_pps: f64,
    pub cond: Condition,
    /// Datagrams per second the receiving socket got.
    pub received_pps: f64,
    /// sockpath: events lost; tcpdump: packets dropped by the kernel.
    pub lost: Option<u64>,
    /// sockpath only: journeys and incomplete ones.
    pub journeys: Option<(u64, u64)>,
}

pub fn run(
    sockpath: &Path,
    tcpdump_pps: f64,
    port: u16,
    other: u16,
    secs: u64,
    dir: &Path,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for f in FRACTIONS {
        let pps = tcpdump_pps * f;
        for cond in [
            Condition::SockpathLoadedPort,
            Condition::SockpathSampled,
            Condition::Tcpdump,
        ] {
            eprintln!("bench: small UDP at {pps:.0} packets/s / {}", cond.name());
            let w = Running::start(cond, sockpath, port, other, dir)?
                .ok_or_else(|| anyhow::anyhow!("no watcher for {}", cond.name()))?;
            std::thread::sleep(Duration::from_millis(300));
            let rate = loads::small_udp_at(port, secs, pps)?;
            let cost = w.stop()?;
            let sm = cost.summary.as_ref();
            let get = |k: &str| sm.and_then(|v| v[k].as_u64());
            rows.push(Row {
                offered_pps: pps,
                cond,
                received_pps: rate.value,
                lost: match cond {
                    Condition::Tcpdump => cost.tcpdump_dropped,
                    _ => get("events_lost"),
                },
                journeys: get("journeys").zip(get("incomplete")),
            });
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(rows)
}

pub fn render(rows: &[Row], secs: u64) -> String {
    let mut s = format!(
        "\nSmall UDP at fixed rates (fractions of what tcpdump sustained above), {secs} s each:\n\n\
         | offered | watcher | received | lost | journeys (incomplete) |\n|---|---|---|---|---|\n"
    );
    for r in rows {
        let lost = match (r.cond, r.lost) {
            (Condition::Tcpdump, Some(n)) => format!("{n} packets dropped"),
            (_, Some(n)) => format!("{n} events"),
            (_, None) => "-".into(),
        };
        let journeys = r
            .journeys
            .map(|(j, i)| format!("{j} ({i})"))
            .unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "| {:.0} packets/s | {} | {:.0} packets/s | {lost} | {journeys} |\n",
            r.offered_pps,
            r.cond.name(),
            r.received_pps,
        ));
    }
    s
}
