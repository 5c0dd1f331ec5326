//! Debian's stock kernels: resolved through their metapackages (the ABI number in the package
//! name changes with every Debian kernel update, so it is never written down here), downloaded
//! with `apt-get download` and unpacked with `dpkg -x` into a cache under `target/vm/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, bail, Context as _};

use crate::cmd::{output, run};

/// A kernel the VM runner boots.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    /// Short name used on the command line and for folders under `target/vm/`.
    pub label: &'static str,
    /// The metapackage that depends on the current image package of this series.
    pub metapackage: &'static str,
    /// Where the metapackage comes from, for the error when it is not in the sources.
    pub origin: &'static str,
}

pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        label: "6.1",
        metapackage: "linux-image-cloud-amd64",
        origin: "Debian 12 (bookworm) main, newer builds in bookworm-security; on Debian 13 this \
                 metapackage points at 6.12 instead, so the 6.1 series needs bookworm sources",
    },
    KernelSpec {
        label: "6.12",
        metapackage: "linux-image-6.12-cloud-amd64",
        origin: "bookworm-security only (source package linux-signed-6.12-amd64, versions \
                 6.12.x-1~deb12uN): add `bookworm-security main` to the apt sources",
    },
];

/// A kernel image package, downloaded and unpacked.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The image package the metapackage depends on now, e.g. linux-image-6.1.0-56-cloud-amd64.
    pub package: String,
    /// Its Debian version, e.g. 6.1.192-2.
    pub version: String,
    /// `uname -r` of this kernel: the folder name under lib/modules.
    pub release: String,
    /// Where `dpkg -x` put the package.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
}

impl Kernel {
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

fn apt_cache(args: &[&str]) -> Option<String> {
    output(Command::new("apt-cache").args(args))
}

/// The image package `metapackage` depends on, asking apt-get update once if apt does not know
/// the metapackage (a fresh machine may have no or old package lists).
fn resolve(spec: &KernelSpec) -> anyhow::Result<String> {
    let depends = |m: &str| {
        apt_cache(&["depends", "--no-recommends", "--no-suggests", m]).and_then(|out| {
            out.lines()
                .filter_map(|l| l.trim().strip_prefix("Depends:"))
                .map(str::trim)
                .find(|d| d.starts_with("linux-image-"))
                .map(str::to_string)
        })
    };
    if let Some(p) = depends(spec.metapackage) {
        return Ok(p);
    }
    eprintln!(
        "xtask vm: apt does not know {}; updating the package lists",
        spec.metapackage
    );
    run(crate::cmd::as_root("apt-get").args(["update", "-q"]))?;
    depends(spec.metapackage).ok_or_else(|| {
        anyhow!(
            "the metapackage {} (kernel {}) is not in the configured apt sources \
             (/etc/apt/sources.list{{,.d}}); it comes from {}",
            spec.metapackage,
            spec.label,
            spec.origin
        )
    })
}

/// The candidate version apt would download for `package`.
fn candidate_version(package: &str) -> anyhow::Result<String> {
    let out = apt_cache(&["show", "--no-all-versions", package])
        .ok_or_else(|| anyhow!("apt-cache show {package} failed"))?;
    out.lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| anyhow!("apt-cache show {package} printed no Version"))
}

fn deb_version(deb: &Path) -> Option<String> {
    output(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version")).map(|v| v.trim().into())
}

/// The cached .deb of `package` at `version`, downloading it when it is not there.
fn download(cache: &Path, package: &str, version: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(cache)?;
    let find = || -> Option<PathBuf> {
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
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    // apt-get download writes into the current directory.
    run(Command::new("apt-get")
        .current_dir(cache)
        .args(["download", "-q"])
        .arg(format!("{package}={version}")))?;
    find().ok_or_else(|| {
        anyhow!(
            "apt-get download {package}={version} left no such .deb in {}",
            cache.display()
        )
    })
}

/// Resolves, downloads and unpacks one kernel; reuses everything already in `cache_root`.
pub fn fetch(spec: &KernelSpec, cache_root: &Path) -> anyhow::Result<Kernel> {
    let package = resolve(spec)?;
    let version = candidate_version(&package)?;
    let root = cache_root
        .join("kernels")
        .join(format!("{package}_{version}"));
    // Written last: a folder without it is a half-finished unpack from an interrupted run.
    let stamp = root.join(".sockpath-vm-complete");
    if !stamp.is_file() {
        let deb = download(&cache_root.join("debs"), &package, &version)?;
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        fs::create_dir_all(&root)?;
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    }
    let release = only_release(&root)?;
    if !release.starts_with(&format!("{}.", spec.label)) {
        bail!(
            "{} now depends on {package} (kernel {release}), not a {} kernel: the apt sources \
             are not the ones this runner expects ({})",
            spec.metapackage,
            spec.label,
            spec.origin
        );
    }
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!("{package} has no {}", vmlinuz.display());
    }
    if !stamp.is_file() {
        // Debian's postinst runs depmod on install; `dpkg -x` does not, so the package has no
        // modules.dep until it is made here.
        run(Command::new("depmod").arg("-b").arg(&root).arg(&release))
            .context("depmod (package kmod) for the kernel's modules.dep")?;
        fs::write(&stamp, format!("{package} {version}\n"))?;
    }
    Ok(Kernel {
        package,
        version,
        release,
        root,
        vmlinuz,
    })
}

fn only_release(root: &Path) -> anyhow::Result<String> {
    let dir = root.join("lib/modules");
    let mut releases: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    match releases.len() {
        1 => Ok(releases.remove(0)),
        _ => bail!(
            "expected one kernel release in {}, found {releases:?}",
            dir.display()
        ),
    }
}

/// `spec` for a label given on the command line.
pub fn spec(label: &str) -> anyhow::Result<KernelSpec> {
    KERNELS
        .iter()
        .find(|k| k.label == label)
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = KERNELS.iter().map(|k| k.label).collect();
            anyhow!("unknown kernel {label}: known are {}", known.join(", "))
        })
}
