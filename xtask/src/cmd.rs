//! Running commands: echoed, checked, and with root where it is needed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, Context as _};

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo (the one running xtask), in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds sockpath (debug) and returns its path.
pub fn build_sockpath() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "-p", "sockpath"]))?;
    let bin = root().join("target/debug/sockpath");
    if !bin.is_file() {
        return Err(anyhow!("{} was not built", bin.display()));
    }
    Ok(bin)
}

/// Builds sockpath optimized (what users install) and returns its path: the emulated VMs start
/// it at every test, and a debug build spends most of each start parsing the kernel's symbols
/// and BTF.
pub fn build_sockpath_release() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "sockpath"]))?;
    let bin = root().join("target/release/sockpath");
    if !bin.is_file() {
        return Err(anyhow!("{} was not built", bin.display()));
    }
    Ok(bin)
}

/// Runs a command, printing it first; fails with its exit status.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", show(cmd)))?;
    if !status.success() {
        return Err(anyhow!("{} failed ({status})", show(cmd)));
    }
    Ok(())
}

/// A command as root: itself when already root, else through sudo.
pub fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("--preserve-env=PATH,RUST_LOG,SOCKPATH_BIN")
            .arg(program);
        c
    }
}

pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether a Debian package is installed.
pub fn installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs whichever of `packages` (name, what needs it) are missing; does nothing when all are
/// present. `who` names the caller in messages; `hint` is added when the install fails.
pub fn apt_install(packages: &[(&str, &str)], who: &str, hint: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which("apt-get").is_none() {
        return Err(anyhow!(
            "{who} needs these Debian packages and there is no apt-get to install them: {}",
            missing.join(" ")
        ));
    }
    eprintln!("{who}: installing Debian packages: {}", missing.join(" "));
    let install = |update: bool| -> anyhow::Result<()> {
        if update {
            run(as_root("apt-get").args(["update", "-q"]))?;
        }
        run(as_root("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))
    };
    // A fresh machine may have no package lists yet.
    install(false)
        .or_else(|_| install(true))
        .with_context(|| format!("installing {}{hint}", missing.join(" ")))
}
