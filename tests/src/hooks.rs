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
