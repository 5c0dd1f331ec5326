//! Everything that touches the kernel: privileges, BTF, loading and attaching the eBPF programs,
//! and the maps user space reads and writes.

pub mod btf;
pub mod facts;
mod filter;
pub mod hz;
mod mode;
pub mod names;
pub mod probes;
pub mod stats;
mod syscall_table;

use std::path::Path;

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    Ebpf, EbpfLoader,
};
use sockpath_ebpf::{
    config::{
        counter, GLOBAL_OFFSETS, GLOBAL_SNAPLEN, MAP_COUNTERS, MAP_EVENTS, MAP_SYSCALL_KINDS,
        MAP_WATCHED_TGIDS,
    },
    event::SNAP_MAX,
    stats::GLOBAL_MODE,
};

pub use self::mode::Mode;
use self::{
    facts::KernelFacts,
    filter::{FilterMaps, KernelMaps},
    probes::StageStatus,
};
use crate::filter::KernelSet;

/// The compiled eBPF object, built by build.rs.
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockpath-ebpf"));

/// What every attach does first: the privileges checked, the memlock limit lifted, the running
/// kernel's facts read, tracefs mounted.
pub fn prepare() -> anyhow::Result<facts::KernelFacts> {
    check_privileges()?;
    raise_memlock();
    let facts = facts::KernelFacts::read()?;
    ensure_tracefs()?;
    hz::prefetch();
    Ok(facts)
}

/// Checks the privileges needed to load eBPF programs, before anything else fails less clearly.
pub fn check_privileges() -> anyhow::Result<()> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    // CAP_SYS_ADMIN (21), or CAP_BPF (39) with CAP_PERFMON (38); tracefs also wants DAC override.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    if has(21) || (has(39) && has(38)) {
        return Ok(());
    }
    Err(anyhow!(
        "sockpath needs root to load its eBPF programs (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, \
         plus access to tracefs and /proc of other processes). Run it with sudo, e.g.: sudo sockpath watch --port 4000, \
         or use a sockpath daemon (`sockpath daemon`, whose group's members need no sudo)"
    ))
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so the ring buffer fits.
pub fn raise_memlock() {
    let r = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to an rlimit.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) };
}

/// Classic tracepoints attach through tracefs, which is not always mounted.
pub fn ensure_tracefs() -> anyhow::Result<()> {
    for p in [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ] {
        if Path::new(p).is_dir() {
            return Ok(());
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid C strings; mounting tracefs has no other effect.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(anyhow!(
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({}); \
             mount it with: mount -t tracefs nodev /sys/kernel/tracing",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The loaded and attached programs with their maps. Dropping it detaches everything; the
/// links are file descriptors, so the kernel detaches them too if the process is killed.
pub struct Kernel {
    pub ebpf: Ebpf,
    pub stages: Vec<StageStatus>,
    counters: PerCpuArray<MapData, u64>,
    watched: BpfHashMap<MapData, u32, u8>,
    filter: FilterMaps<KernelMaps>,
    /// The per-port statistics, when the mode counts them.
    stats: Option<stats::KernelStats>,
    pub mode: Mode,
}

impl Kernel {
    /// Loads the programs watching `set` and keeping `snaplen` bytes of each packet, and
    /// attaches them, writing journeys.
    pub fn load(
        facts: &KernelFacts,
        set: &KernelSet,
        snaplen: u32,
        ring_bytes: u32,
    ) -> anyhow::Result<Self> {
        Self::load_mode(facts, set, snaplen, ring_bytes, Mode::JOURNEYS)
    }

    /// Like `load`, with journeys, statistics or both as `mode` says; only the hooks the mode
    /// needs are attached.
    pub fn load_mode(
        facts: &KernelFacts,
        set: &KernelSet,
        snaplen: u32,
        ring_bytes: u32,
        mode: Mode,
    ) -> anyhow::Result<Self> {
        let mut offsets = facts
            .btf
            .offsets()
            .context("reading kernel struct offsets from BTF")?;
        offsets.features = facts.features();
        tracing::debug!("kernel offsets from BTF: {offsets:?}");
        let snaplen = snaplen.min(SNAP_MAX as u32);
        let btf = facts
            .btf
            .for_aya(&attach_names())
            .context("the kernel's BTF for attaching")?;
        // Looking the names up allocated and freed megabytes; jemalloc would keep them.
        crate::memory::release_free_memory();
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .override_global(GLOBAL_SNAPLEN, &snaplen, true)
            .override_global(GLOBAL_MODE, &mode.config(), true)
            .map_max_entries(MAP_EVENTS, ring_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF object")?;
        if let Err(e) = aya_log::EbpfLogger::init(&mut ebpf).map(spawn_logger) {
            tracing::debug!("eBPF logs not forwarded: {e}");
        }
        {
            let mut kinds: Array<_, u8> = Array::try_from(
                ebpf.map_mut(MAP_SYSCALL_KINDS)
                    .ok_or_else(|| anyhow!("map {MAP_SYSCALL_KINDS} missing"))?,
            )?;
            for (nr, kind) in syscall_table::numbers() {
                kinds.set(nr, kind as u8, 0)?;
            }
        }
        // The set is in place before the first program runs.
        let mut filter = FilterMaps::new(KernelMaps::take(&mut ebpf)?);
        filter.set(set)?;
        let stages = probes::attach_all(&mut ebpf, &btf, facts, |s| mode.wants(s))?;
        let stats = if mode.stats {
            Some(stats::KernelStats::from_ebpf(&mut ebpf)?)
        } else {
            None
        };
        let counters = PerCpuArray::try_from(
            ebpf.take_map(MAP_COUNTERS)
                .ok_or_else(|| anyhow!("map {MAP_COUNTERS} missing"))?,
        )?;
        let watched = BpfHashMap::try_from(
            ebpf.take_map(MAP_WATCHED_TGIDS)
                .ok_or_else(|| anyhow!("map {MAP_WATCHED_TGIDS} missing"))?,
        )?;
        Ok(Self {
            ebpf,
            stages,
            counters,
            watched,
            filter,
            stats,
            mode,
        })
    }

    /// The per-port statistics, if the mode counts them.
    pub fn stats(&self) -> Option<&stats::KernelStats> {
        self.stats.as_ref()
    }

    /// The per-port statistics to read intervals from (`KernelStats::take`).
    pub fn stats_mut(&mut self) -> Option<&mut stats::KernelStats> {
        self.stats.as_mut()
    }

    pub fn ring(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .ok_or_else(|| anyhow!("map {MAP_EVENTS} missing"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Sum over CPUs of one counter.
    pub fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }

    pub fn lost(&self) -> u64 {
        self.counter(counter::EVENTS_LOST)
    }

    /// Follow this process's read/write/close calls (it owns a watched socket).
    pub fn watch_tgid(&mut self, tgid: u32) {
        let _ = self.watched.insert(tgid, 1, 0);
    }

    /// Watches `set` from now on, without reloading: the programs read the set at every run.
    /// Owners' ports learned so far are kept while `set` learns owners' ports.
    pub fn set_filter(&mut self, set: &KernelSet) -> anyhow::Result<()> {
        self.filter.set(set)
    }

    /// Owners' sockets' local ports found outside the kernel (in /proc): watched from now on
    /// when the set learns owners' ports; ignored otherwise.
    pub fn learn_ports(&mut self, ports: impl IntoIterator<Item = u16>) -> anyhow::Result<()> {
        self.filter.learn_ports(ports)
    }
}

/// What aya looks up in the kernel's BTF to attach the table's programs: `btf_trace_NAME` for
/// tp_btf (a typedef), the function for fentry/fexit.
pub(crate) fn attach_names() -> Vec<(String, bool)> {
    crate::hooks::programs()
        .filter_map(|(_, p)| match p.attach {
            crate::hooks::Attach::TpBtf { tracepoint, .. } => {
                Some((format!("btf_trace_{tracepoint}"), false))
            }
            crate::hooks::Attach::Fentry { function }
            | crate::hooks::Attach::Fexit { function } => Some((function.to_string(), true)),
            _ => None,
        })
        .collect()
}

fn spawn_logger(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd holds it.
    let Ok(mut fd) = (unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    }) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
