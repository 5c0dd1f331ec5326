//! Debian's stock kernels: resolved through their metapackages (the ABI number in the package
//! name changes with every Debian kernel update, so it is never written down here) with the
//! runner's own apt configuration for the suite (see [`super::apt`]), downloaded with
//! `apt-get download` and unpacked with `dpkg -x` into a cache under `target/vm/`.
//!
//! Two package layouts:
//! - up to Debian 13, `linux-image-REL` holds `boot/vmlinuz-REL` and `lib/modules/REL/`;
//! - from Debian 14 (sid), `linux-image-REL` is a small package depending on
//!   `linux-binary-REL` (`usr/lib/modules/REL/vmlinuz`), `linux-base-REL` (System.map, config,
//!   modules.builtin) and `linux-modules-REL` (`usr/lib/modules/REL/kernel/...`): all of them
//!   are unpacked into one folder.

mod apt_output;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, bail, Context as _};

pub use self::apt_output::{companions, depends_of, image_package, version_of};
use super::apt::{self, Apt, Suite};
use crate::cmd::{output, run};

/// A kernel the VM runner boots.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    /// Short name used on the command line and for folders under `target/vm/`.
    pub label: &'static str,
    /// Other names `--kernel` accepts (the suite's name).
    pub aliases: &'static [&'static str],
    /// The runner's apt sources this kernel comes from.
    pub suite: Suite,
    /// The metapackage that depends on the current image package of this series.
    pub metapackage: &'static str,
    /// The kernel release must begin with `<series>.`; None for sid, which follows Linux.
    pub series: Option<&'static str>,
    /// In the matrix `cargo xtask vm` and `cargo xtask test` run when no kernel is named.
    pub default: bool,
    /// Who ships it, for messages.
    pub origin: &'static str,
}

pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        label: "5.10",
        aliases: &["bullseye"],
        suite: apt::BULLSEYE,
        metapackage: "linux-image-cloud-amd64",
        series: Some("5.10"),
        // Not every test passes there yet (issue 13): `--kernel 5.10` runs it.
        default: false,
        origin: "Debian 11 (bullseye) main",
    },
    KernelSpec {
        label: "6.1",
        aliases: &["bookworm"],
        suite: apt::BOOKWORM,
        metapackage: "linux-image-cloud-amd64",
        series: Some("6.1"),
        default: true,
        origin: "Debian 12 (bookworm) main, newer builds in bookworm-security",
    },
    KernelSpec {
        label: "6.12",
        aliases: &["trixie"],
        suite: apt::BOOKWORM,
        metapackage: "linux-image-6.12-cloud-amd64",
        series: Some("6.12"),
        default: true,
        origin: "bookworm-security (source package linux-signed-6.12-amd64, versions \
                 6.12.x-1~deb12uN; the kernel of Debian 13)",
    },
    KernelSpec {
        label: "sid",
        aliases: &["unstable"],
        suite: apt::SID,
        metapackage: "linux-image-cloud-amd64",
        series: None,
        default: false,
        origin: "Debian unstable (sid) main: the newest kernel Debian ships",
    },
];

/// A kernel, downloaded and unpacked.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The image package the metapackage depends on now, e.g. linux-image-6.1.0-56-cloud-amd64.
    pub package: String,
    /// Its Debian version, e.g. 6.1.192-2.
    pub version: String,
    /// The packages unpacked with it (Debian 14's split layout), with their versions.
    pub companions: Vec<(String, String)>,
    /// `uname -r` of this kernel: the folder name under lib/modules.
    pub release: String,
    /// Where `dpkg -x` put the packages.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// lib/modules/REL or usr/lib/modules/REL under `root`: modules.dep, modules.builtin, kernel/.
    pub modules_dir: PathBuf,
}

/// Where the unpacked packages put the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules_dir: PathBuf,
}

/// Finds the one kernel release under `root` (lib/modules or usr/lib/modules), its vmlinuz
/// (boot/vmlinuz-REL up to Debian 13, usr/lib/modules/REL/vmlinuz from Debian 14) and its
/// modules folder.
pub fn layout(root: &Path) -> anyhow::Result<Layout> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for base in ["lib/modules", "usr/lib/modules"] {
        let dir = root.join(base);
        // lib/modules may be a link to usr/lib/modules (made for depmod): count it once.
        if base == "lib/modules" && (dir.is_symlink() || root.join("lib").is_symlink()) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if let Ok(name) = e.file_name().into_string() {
                if e.path().is_dir() {
                    found.push((name, e.path()));
                }
            }
        }
    }
    let (release, modules_dir) = match found.len() {
        1 => found.remove(0),
        0 => bail!(
            "no kernel release under {}/lib/modules or {}/usr/lib/modules",
            root.display(),
            root.display()
        ),
        _ => bail!(
            "expected one kernel release under {}, found {:?}",
            root.display(),
            found.iter().map(|f| &f.0).collect::<Vec<_>>()
        ),
    };
    let vmlinuz = [
        root.join("boot").join(format!("vmlinuz-{release}")),
        modules_dir.join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| {
        anyhow!(
            "no vmlinuz for {release} (neither boot/vmlinuz-{release} nor {}/vmlinuz) under {}",
            modules_dir.display(),
            root.display()
        )
    })?;
    Ok(Layout {
        release,
        vmlinuz,
        modules_dir,
    })
}

/// Whether `release` belongs to `spec`'s series.
pub fn in_series(spec: &KernelSpec, release: &str) -> bool {
    match spec.series {
        Some(s) => release.starts_with(&format!("{s}.")),
        None => true,
    }
}

fn deb_version(deb: &Path) -> Option<String> {
    output(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version")).map(|v| v.trim().into())
}

/// The cached .deb of `package` at `version`, if it is there.
fn cached_deb(cache: &Path, package: &str, version: &str) -> Option<PathBuf> {
    fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")))
        })
        .find(|p| deb_version(p).as_deref() == Some(version))
}

/// What the metapackage resolves to now: the image package, its version, and its companions
/// with theirs.
struct Resolved {
    package: String,
    version: String,
    companions: Vec<(String, String)>,
}

fn resolve(spec: &KernelSpec, apt: &Apt) -> anyhow::Result<Resolved> {
    let depends = |p: &str| {
        apt.cache(&["depends", "--no-recommends", "--no-suggests", p])
            .map(|o| depends_of(&o))
    };
    let version = |p: &str| -> anyhow::Result<String> {
        apt.cache(&["show", "--no-all-versions", p])
            .as_deref()
            .and_then(version_of)
            .ok_or_else(|| {
                anyhow!(
                    "apt-cache show {p} gave no version ({} sources)",
                    apt.suite.name
                )
            })
    };
    let package = depends(spec.metapackage)
        .as_deref()
        .and_then(image_package)
        .ok_or_else(|| {
            anyhow!(
                "the metapackage {} (kernel {}) is not in the runner's {} sources ({}); it \
                 comes from {}",
                spec.metapackage,
                spec.label,
                apt.suite.name,
                apt.dir.join("sources.list").display(),
                spec.origin
            )
        })?;
    let version_now = version(&package)?;
    let mut comp = Vec::new();
    for c in companions(&package, &depends(&package).unwrap_or_default()) {
        let v = version(&c)?;
        comp.push((c, v));
    }
    Ok(Resolved {
        package,
        version: version_now,
        companions: comp,
    })
}

/// Downloads (what is not cached) and unpacks the resolved packages into `root`.
fn unpack(r: &Resolved, apt: &Apt, debs: &Path, root: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for (p, v) in
        std::iter::once((&r.package, &r.version)).chain(r.companions.iter().map(|(p, v)| (p, v)))
    {
        let deb = match cached_deb(debs, p, v) {
            Some(d) => d,
            None => {
                apt.download(debs, p, v)?;
                cached_deb(debs, p, v).ok_or_else(|| {
                    anyhow!(
                        "apt-get download {p}={v} left no such .deb in {}",
                        debs.display()
                    )
                })?
            }
        };
        files.push(deb);
    }
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    fs::create_dir_all(root)?;
    for deb in &files {
        run(Command::new("dpkg").arg("-x").arg(deb).arg(root))?;
    }
    Ok(())
}

/// Resolves, downloads and unpacks one kernel; reuses everything already under `cache_root`
/// (target/vm/): the suite's package lists (refreshed once a day), the .debs and the unpacked
/// folder.
pub fn fetch(spec: &KernelSpec, cache_root: &Path) -> anyhow::Result<Kernel> {
    let apt = Apt::prepare(spec.suite, &cache_root.join("apt"))?;
    let mut updated = apt.update_if_stale()?;
    let debs = cache_root.join("debs");
    let (r, root) = loop {
        let r = match resolve(spec, &apt) {
            Ok(r) => r,
            Err(e) if !updated => {
                eprintln!("xtask vm: {e:#}; updating the lists once more");
                apt.update()?;
                updated = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        let root = cache_root
            .join("kernels")
            .join(format!("{}_{}", r.package, r.version));
        // Written last: a folder without it is a half-finished unpack from an interrupted run.
        if root.join(STAMP).is_file() {
            break (r, root);
        }
        match unpack(&r, &apt, &debs, &root) {
            Ok(()) => break (r, root),
            // Lists a day old may name packages the mirror has replaced since.
            Err(e) if !updated => {
                eprintln!("xtask vm: {e:#}; updating the lists and resolving again");
                apt.update()?;
                updated = true;
            }
            Err(e) => return Err(e),
        }
    };
    let stamp = root.join(STAMP);
    if !stamp.is_file() {
        // depmod -b looks under BASE/lib/modules; Debian 14 packages use usr/lib/modules.
        if !root.join("lib/modules").exists() && root.join("usr/lib/modules").is_dir() {
            fs::create_dir_all(root.join("lib"))?;
            std::os::unix::fs::symlink("../usr/lib/modules", root.join("lib/modules"))?;
        }
    }
    let l = layout(&root)?;
    if !in_series(spec, &l.release) {
        bail!(
            "{} now depends on {} (kernel {}), not a {} kernel: the runner's sources for {} \
             are not the ones it expects ({})",
            spec.metapackage,
            r.package,
            l.release,
            spec.label,
            apt.suite.name,
            spec.origin
        );
    }
    if !stamp.is_file() {
        // Debian's postinst runs depmod on install; `dpkg -x` does not, so the package has no
        // modules.dep until it is made here.
        run(Command::new("depmod").arg("-b").arg(&root).arg(&l.release))
            .context("depmod (package kmod) for the kernel's modules.dep")?;
        if !l.modules_dir.join("modules.dep").is_file() {
            bail!(
                "depmod made no {}",
                l.modules_dir.join("modules.dep").display()
            );
        }
        let mut text = format!("{} {}\n", r.package, r.version);
        for (p, v) in &r.companions {
            text.push_str(&format!("{p} {v}\n"));
        }
        fs::write(&stamp, text)?;
    }
    Ok(Kernel {
        package: r.package,
        version: r.version,
        companions: r.companions,
        release: l.release,
        root,
        vmlinuz: l.vmlinuz,
        modules_dir: l.modules_dir,
    })
}

const STAMP: &str = ".sockpath-vm-complete";

/// `spec` for a label (or alias) given on the command line.
pub fn spec(label: &str) -> anyhow::Result<KernelSpec> {
    KERNELS
        .iter()
        .find(|k| k.label == label || k.aliases.contains(&label))
        .copied()
        .ok_or_else(|| {
            let known: Vec<String> = KERNELS
                .iter()
                .map(|k| format!("{} ({})", k.label, k.aliases.join(", ")))
                .collect();
            anyhow!("unknown kernel {label}: known are {}", known.join(", "))
        })
}

/// The kernels run when none is named.
pub fn default_matrix() -> Vec<KernelSpec> {
    KERNELS.iter().filter(|k| k.default).copied().collect()
}

#[cfg(test)]
mod tests;
