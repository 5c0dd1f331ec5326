//! Kernel modules from a Debian kernel package, in the order `insmod` needs them. Busybox's
//! insmod loads one file and knows no dependencies, and the 6.12 packages compress modules
//! with xz, so the order comes from modules.dep here and the files are unpacked on the host.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, bail, Context as _};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The name the kernel uses (dashes as underscores).
    pub name: String,
    pub path: PathBuf,
}

/// `veth.ko.xz` -> `veth`; `nf-foo.ko` -> `nf_foo`.
pub fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// modules.dep: `kernel/drivers/net/veth.ko.xz: dep1 dep2`, paths relative to the folder.
pub fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (m, deps) = l.split_once(':')?;
            Some((
                module_name(m),
                (
                    m.trim().to_string(),
                    deps.split_whitespace().map(module_name).collect(),
                ),
            ))
        })
        .collect()
}

/// `wanted` and their dependencies, each after everything it depends on. Modules built into
/// the kernel (modules.builtin) need nothing and are left out.
pub fn load_order(modules_dir: &Path, wanted: &[&str]) -> anyhow::Result<Vec<Module>> {
    let dep_file = modules_dir.join("modules.dep");
    let dep = parse_dep(
        &fs::read_to_string(&dep_file)
            .with_context(|| format!("reading {} (made by depmod)", dep_file.display()))?,
    );
    let builtin: BTreeSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        dep: &BTreeMap<String, (String, Vec<String>)>,
        builtin: &BTreeSet<String>,
        dir: &Path,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<Module>,
    ) -> anyhow::Result<()> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some((path, deps)) = dep.get(name) else {
            if builtin.contains(name) {
                return Ok(());
            }
            bail!("module {name} is neither in modules.dep nor built in");
        };
        for d in deps {
            visit(d, dep, builtin, dir, seen, order)?;
        }
        order.push(Module {
            name: name.to_string(),
            path: dir.join(path),
        });
        Ok(())
    }
    for w in wanted {
        visit(
            &module_name(w),
            &dep,
            &builtin,
            modules_dir,
            &mut seen,
            &mut order,
        )?;
    }
    Ok(order)
}

/// Writes the uncompressed module to `dst`.
pub fn unpack(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let name = src.to_string_lossy();
    let tool = if name.ends_with(".ko") {
        fs::copy(src, dst)?;
        return Ok(());
    } else if name.ends_with(".ko.xz") {
        "xz"
    } else if name.ends_with(".ko.zst") {
        "zstd"
    } else if name.ends_with(".ko.gz") {
        "gzip"
    } else {
        bail!("{name}: unknown module compression");
    };
    let out = Command::new(tool)
        .args(["-d", "-c"])
        .arg(src)
        .output()
        .with_context(|| format!("starting {tool} to unpack {name}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "{tool} -d {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    fs::write(dst, out.stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_deps() {
        assert_eq!(module_name("kernel/drivers/net/veth.ko.xz"), "veth");
        assert_eq!(module_name("kernel/net/nf-x.ko"), "nf_x");
        let d = parse_dep("kernel/a.ko: kernel/b.ko.xz kernel/c-d.ko\nkernel/b.ko.xz:\n");
        assert_eq!(d["a"].1, vec!["b".to_string(), "c_d".to_string()]);
        assert_eq!(d["b"].0, "kernel/b.ko.xz");
    }

    #[test]
    fn dependencies_come_first() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-mod-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("modules.dep"),
            "k/a.ko: k/b.ko k/c.ko\nk/b.ko: k/c.ko\nk/c.ko:\n",
        )
        .unwrap();
        fs::write(dir.join("modules.builtin"), "k/z.ko\n").unwrap();
        let names: Vec<String> = load_order(&dir, &["a", "z"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert!(load_order(&dir, &["nope"]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
