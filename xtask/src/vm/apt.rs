//! apt sources that belong to the runner: one apt configuration per Debian suite under
//! `target/vm/apt/<suite>/` (its own sources.list, package lists, cache and an empty dpkg
//! status), used through `APT_CONFIG`. The machine's own apt sources are never read or changed:
//! adding sid or bullseye to them would put those suites' libraries one `apt-get install` away
//! from the system.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{anyhow, Context as _};

use crate::cmd::{output, run};

/// Debian's archive keys (package debian-archive-keyring): they sign every suite's Release file.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Package lists older than this are refreshed before a kernel is resolved: Debian replaces
/// kernel packages (and removes the old ones from the mirrors) with each update.
pub const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One archive line: base URI, distribution, components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub uri: &'static str,
    pub dist: &'static str,
    pub components: &'static str,
}

/// A set of apt sources with a folder of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// The folder name under target/vm/apt/.
    pub name: &'static str,
    pub sources: &'static [Source],
}

const DEBIAN: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";

pub const BULLSEYE: Suite = Suite {
    name: "bullseye",
    sources: &[Source {
        uri: DEBIAN,
        dist: "bullseye",
        components: "main",
    }],
};

pub const BOOKWORM: Suite = Suite {
    name: "bookworm",
    sources: &[
        Source {
            uri: DEBIAN,
            dist: "bookworm",
            components: "main",
        },
        // Newer 6.1 builds, and the 6.12 series (linux-signed-6.12-amd64) for Debian 12.
        Source {
            uri: SECURITY,
            dist: "bookworm-security",
            components: "main",
        },
    ],
};

pub const SID: Suite = Suite {
    name: "sid",
    sources: &[Source {
        uri: DEBIAN,
        dist: "sid",
        components: "main",
    }],
};

/// The sources.list of `suite`: amd64 only, signed by Debian's archive keys.
pub fn sources_list(suite: &Suite) -> String {
    let mut s = format!(
        "# Written by `cargo xtask vm` (xtask/src/vm/apt.rs): the runner's own sources for {}.\n",
        suite.name
    );
    for src in suite.sources {
        s.push_str(&format!(
            "deb [arch=amd64 signed-by={KEYRING}] {} {} {}\n",
            src.uri, src.dist, src.components
        ));
    }
    s
}

/// The apt configuration file for the folder `dir`: every path apt reads or writes for sources,
/// lists, preferences, keys, the package cache and the dpkg status is inside `dir`.
pub fn apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "// Written by `cargo xtask vm` (xtask/src/vm/apt.rs); used through APT_CONFIG.\n\
         Dir::Etc::sourcelist \"{d}/sources.list\";\n\
         Dir::Etc::sourceparts \"-\";\n\
         Dir::Etc::preferences \"{d}/preferences\";\n\
         Dir::Etc::preferencesparts \"{d}/preferences.d\";\n\
         Dir::Etc::trusted \"{d}/trusted.gpg\";\n\
         Dir::Etc::trustedparts \"{d}/trusted.gpg.d\";\n\
         Dir::State \"{d}/state\";\n\
         Dir::State::Lists \"{d}/lists\";\n\
         Dir::State::status \"{d}/status\";\n\
         Dir::Cache \"{d}/cache\";\n\
         APT::Architecture \"amd64\";\n\
         APT::Architectures \"amd64\";\n\
         Acquire::Languages \"none\";\n\
         // The folder is under the project's target/, which apt's download user may not reach.\n\
         APT::Sandbox::User \"root\";\n"
    )
}

/// The runner's apt for one suite.
#[derive(Debug, Clone)]
pub struct Apt {
    pub suite: Suite,
    pub dir: PathBuf,
}

impl Apt {
    /// Writes the configuration under `apt_root/<suite>/` (lists already there are kept).
    pub fn prepare(suite: Suite, apt_root: &Path) -> anyhow::Result<Apt> {
        let dir = apt_root.join(suite.name);
        for d in [
            "lists/partial",
            "cache/archives/partial",
            "state",
            "preferences.d",
            "trusted.gpg.d",
        ] {
            fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
        let sources = sources_list(&suite);
        let list = dir.join("sources.list");
        if fs::read_to_string(&list).ok().as_deref() != Some(sources.as_str()) {
            // Other sources than the lists were made from: they are stale.
            let _ = fs::remove_file(dir.join("lists/.sockpath-updated"));
            fs::write(&list, sources)?;
        }
        if !dir.join("status").is_file() {
            // An empty dpkg status: nothing is installed as far as this apt knows.
            fs::write(dir.join("status"), "")?;
        }
        fs::write(dir.join("apt.conf"), apt_conf(&dir))?;
        Ok(Apt { suite, dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", self.dir.join("apt.conf"));
        c
    }

    /// `apt-cache ARGS` with this configuration; its output when it succeeded.
    pub fn cache(&self, args: &[&str]) -> Option<String> {
        output(self.command("apt-cache").args(args))
    }

    /// When the lists were last brought up to date (None: never).
    pub fn updated_at(&self) -> Option<SystemTime> {
        fs::metadata(self.dir.join("lists/.sockpath-updated"))
            .and_then(|m| m.modified())
            .ok()
    }

    pub fn lists_fresh(&self) -> bool {
        self.updated_at()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < LISTS_MAX_AGE)
    }

    /// `apt-get update` with this configuration.
    pub fn update(&self) -> anyhow::Result<()> {
        eprintln!(
            "xtask vm: updating the runner's package lists for {} ({})",
            self.suite.name,
            self.dir.display()
        );
        run(self.command("apt-get").args(["update", "-q"]))
            .with_context(|| format!("apt-get update for {}", self.suite.name))?;
        fs::write(self.dir.join("lists/.sockpath-updated"), "")?;
        Ok(())
    }

    /// Updates the lists when they are missing or older than [`LISTS_MAX_AGE`]. A failed update
    /// with lists already there (offline, a mirror down) is a warning: what is cached may still
    /// resolve to packages already downloaded.
    pub fn update_if_stale(&self) -> anyhow::Result<bool> {
        if self.lists_fresh() {
            return Ok(false);
        }
        match self.update() {
            Ok(()) => Ok(true),
            Err(e) if self.updated_at().is_some() => {
                eprintln!("xtask vm: {e:#}; going on with the lists from the last update");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `apt-get download PACKAGE=VERSION` into `dest`.
    pub fn download(&self, dest: &Path, package: &str, version: &str) -> anyhow::Result<()> {
        fs::create_dir_all(dest)?;
        // apt-get download writes into the current directory.
        run(self
            .command("apt-get")
            .current_dir(dest)
            .args(["download", "-q"])
            .arg(format!("{package}={version}")))
        .map_err(|e| {
            anyhow!(
                "{e:#} (sources: {})",
                self.dir.join("sources.list").display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_the_suites_own() {
        let s = sources_list(&BOOKWORM);
        assert!(s.contains(
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian bookworm main\n"
        ));
        assert!(s.contains("http://deb.debian.org/debian-security bookworm-security main\n"));
        let sid = sources_list(&SID);
        assert!(sid.contains(" sid main\n"));
        assert!(!sid.contains("bookworm"));
        assert!(sources_list(&BULLSEYE).contains(" bullseye main\n"));
    }

    #[test]
    fn configuration_keeps_apt_inside_its_folder() {
        let dir = Path::new("/p/target/vm/apt/sid");
        let c = apt_conf(dir);
        for key in [
            "Dir::Etc::sourcelist \"/p/target/vm/apt/sid/sources.list\";",
            // No /etc/apt/sources.list.d/*.
            "Dir::Etc::sourceparts \"-\";",
            "Dir::State::Lists \"/p/target/vm/apt/sid/lists\";",
            "Dir::State::status \"/p/target/vm/apt/sid/status\";",
            "Dir::Cache \"/p/target/vm/apt/sid/cache\";",
            "Dir::Etc::preferencesparts \"/p/target/vm/apt/sid/preferences.d\";",
        ] {
            assert!(c.contains(key), "{key} missing from\n{c}");
        }
        // Every Dir:: setting points into the folder.
        for l in c.lines().filter(|l| l.starts_with("Dir::")) {
            assert!(
                l.contains("\"/p/target/vm/apt/sid/") || l.ends_with("\"-\";"),
                "{l}"
            );
        }
    }

    #[test]
    fn prepare_writes_the_folder_and_marks_new_sources_stale() {
        let root = std::env::temp_dir().join(format!("xtask-vm-apt-{}", std::process::id()));
        let apt = Apt::prepare(SID, &root).unwrap();
        assert!(apt.dir.join("lists/partial").is_dir());
        assert!(apt.dir.join("cache/archives/partial").is_dir());
        assert_eq!(fs::read_to_string(apt.dir.join("status")).unwrap(), "");
        assert!(!apt.lists_fresh());
        fs::write(apt.dir.join("lists/.sockpath-updated"), "").unwrap();
        assert!(Apt::prepare(SID, &root).unwrap().lists_fresh());
        // Changed sources: the lists no longer count as up to date.
        fs::write(apt.dir.join("sources.list"), "deb http://x y main\n").unwrap();
        assert!(!Apt::prepare(SID, &root).unwrap().lists_fresh());
        fs::remove_dir_all(&root).unwrap();
    }
}
