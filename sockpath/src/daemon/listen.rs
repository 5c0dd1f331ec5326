//! The daemon's Unix socket: created mode 0660, owned by root and the daemon's group, in a
//! folder anyone may enter (/run/sockpath, 0755), and removed when the daemon stops.

use std::{
    io,
    os::unix::{
        fs::{FileTypeExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _};

use super::access::Group;

/// Where `sockpath daemon` listens and the other commands look for it.
pub const DEFAULT_SOCKET: &str = "/run/sockpath/sockpath.sock";
/// The group whose members the daemon serves when no `--group` is given.
pub const DEFAULT_GROUP: &str = "sockpath";

/// The socket file; removed on drop.
pub struct Listening {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` for root and `group` (mode 0660), or root alone without one (0600).
pub fn bind(path: &Path, group: Option<&Group>) -> anyhow::Result<Listening> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the socket's folder {}", dir.display()))?;
            // Group members must be able to reach the socket inside.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    remove_stale(path)?;
    // Created with no permissions for group and others, and opened to the group only once it
    // belongs to it: never reachable by anyone else, even for a moment.
    // SAFETY: umask has no preconditions; restored just after.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("listening on {}", path.display()))?;
    let listening = Listening {
        listener,
        path: path.to_path_buf(),
    };
    let (gid, mode) = group.map(|g| (g.gid, 0o660)).unwrap_or((0, 0o600));
    std::os::unix::fs::chown(path, Some(0), Some(gid))
        .with_context(|| format!("giving {} to root and group {gid}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listening)
}

/// A socket file left by a daemon that is gone is removed; one a daemon answers on is an error,
/// and so is anything that is not a socket.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking at {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Err(anyhow!(
            "{} exists and is not a socket: remove it or choose another path with --socket",
            path.display()
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(anyhow!(
            "a sockpath daemon already listens on {} (stop it first, or give this one another --socket)",
            path.display()
        )),
        Err(_) => std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sockpath-listen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_socket_is_0660_in_a_folder_made_for_it_and_removed_at_the_end() {
        // chown needs root: as another user, the unit tests check what they can.
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = temp_dir("mode");
        let path = dir.join("sub").join("s.sock");
        let g = Group {
            gid: 4_123_457,
            name: "x".into(),
        };
        let l = bind(&path, Some(&g)).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o660);
        assert_eq!((m.uid(), m.gid()), (0, 4_123_457));
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o755
        );
        // A second daemon on the same path is refused while the first answers.
        let e = bind(&path, Some(&g)).err().unwrap().to_string();
        assert!(e.contains("already listens"), "{e}");
        drop(l);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_file_is_not() {
        let dir = temp_dir("stale");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a socket file nobody listens on");
        remove_stale(&path).unwrap();
        assert!(!path.exists());
        std::fs::write(&path, "x").unwrap();
        assert!(remove_stale(&path)
            .unwrap_err()
            .to_string()
            .contains("not a socket"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
