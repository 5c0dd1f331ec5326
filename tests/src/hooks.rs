//! Which hooks the kernel under test serves stages with, as sockpath's start object says.

use serde_json::Value;

/// The hook serving a stage, from sockpath's start object ("IP receive (ip_rcv): fentry/ip_rcv
/// + ..."): None when the stage is inferred on this kernel.
pub fn stage_hook(start: &Value, stage_prefix: &str) -> Option<String> {
    let line = start["hooks"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with(stage_prefix))?;
    let hook = line.split_once(": ")?.1;
    (!hook.starts_with("none") && !hook.starts_with("inferred")).then(|| hook.to_string())
}

/// Set by the VM runner on kernels that have fentry or kprobes (Debian's stock kernels): there the
/// IP, transport and lookup stages must be observed, not inferred.
pub fn expect_hooks() -> bool {
    std::env::var_os("SOCKPATH_EXPECT_HOOKS").is_some_and(|v| v == "1")
}

/// Whether the running kernel is `major.minor` or later (from /proc/sys/kernel/osrelease).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// The drop reason sockpath reports for a drop the kernel gives `reason` for: kernels before
/// 5.17 pass no reason to kfree_skb, and sockpath's fallback says so (see `sockpath probes`).
pub fn drop_reason(reason: &str) -> &str {
    if kernel_at_least(5, 17) {
        reason
    } else {
        "reason not given by this kernel"
    }
}
