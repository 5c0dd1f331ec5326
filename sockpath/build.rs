//! Builds the eBPF programs (crate sockpath-ebpf, BPF target, nightly + bpf-linker) and leaves the
//! object in OUT_DIR, where main.rs embeds it.

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no workspace root"))?
        .join("sockpath-ebpf");
    let root = root.to_str().context("non-UTF-8 path")?;
    if which_bpf_linker().is_none() {
        return Err(anyhow!(
            "bpf-linker not found on PATH: run `cargo xtask setup` (it builds bpf-linker against LLVM 22)"
        ));
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sockpath-ebpf",
            root_dir: root,
            no_default_features: true,
            features: &["ebpf"],
        }],
        aya_build::Toolchain::Nightly,
    )
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}
