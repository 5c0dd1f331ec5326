//! Who may use the daemon: root and the members of its group. The socket file's mode (0660,
//! root and the group) makes the kernel refuse everyone else at connect(); each connection's
//! peer credentials (SO_PEERCRED) are logged and checked again, so a socket whose mode was
//! loosened by hand still serves only them.

use std::ffi::{CStr, CString};

/// A group, by number and (if the system knows it) name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub gid: u32,
    /// The name, or the number when no group of that number has one (a container or a VM
    /// without /etc/group entries).
    pub name: String,
}

impl Group {
    /// `--group NAME`, or a number.
    pub fn resolve(spec: &str) -> Result<Self, String> {
        if let Ok(gid) = spec.parse::<u32>() {
            return Ok(Self {
                gid,
                name: group_name(gid).unwrap_or_else(|| spec.to_string()),
            });
        }
        group_gid(spec)
            .map(|gid| Self {
                gid,
                name: spec.to_string(),
            })
            .ok_or_else(|| {
                format!(
                    "no group named {spec:?}: create it (groupadd --system {spec}) or give another with --group NAME or a number"
                )
            })
    }
}

/// The name of group `gid`, if the system has one.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: zeroed plain C struct, filled by getgrgid_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers; buf outlives the use of the strings it holds.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || grp.gr_name.is_null() {
        return None;
    }
    // SAFETY: getgrgid_r set gr_name to a NUL-terminated string in buf.
    let name = unsafe { CStr::from_ptr(grp.gr_name) };
    Some(name.to_string_lossy().into_owned())
}

fn group_gid(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: zeroed plain C struct, filled by getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers and a NUL-terminated name.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// The credentials of a connected client, as the kernel gave them (SO_PEERCRED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(p) => write!(f, "pid {p} uid {} gid {}", self.uid, self.gid),
            None => write!(f, "uid {} gid {}", self.uid, self.gid),
        }
    }
}

/// The supplementary groups of process `pid` (the `Groups:` line of /proc/PID/status).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Whether `peer` may use a daemon serving `group` (root always may). Why not, if not.
pub fn admit(peer: &Peer, group: Option<&Group>) -> Result<(), String> {
    if peer.uid == 0 {
        return Ok(());
    }
    let Some(group) = group else {
        return Err(format!(
            "this sockpath daemon serves root only (it was started without a group); you are uid {}",
            peer.uid
        ));
    };
    let member = peer.gid == group.gid
        || peer
            .pid
            .is_some_and(|p| supplementary_groups(p).contains(&group.gid));
    if member {
        Ok(())
    } else {
        Err(refusal(peer.uid, &group.name))
    }
}

/// The words of a refusal, the same from the daemon and from a client the kernel refused.
pub fn refusal(uid: u32, group: &str) -> String {
    format!(
        "the sockpath daemon serves root and the members of group {group}, and uid {uid} is not one: \
         an administrator can add you (usermod -aG {group} USER, then log in again), \
         or run sockpath alone as root (sudo sockpath ... --standalone)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_resolve_by_name_and_number() {
        let root = Group::resolve("0").unwrap();
        assert_eq!(root.gid, 0);
        assert_eq!(Group::resolve("root").unwrap().gid, 0);
        // A number no group has is still a group (a VM guest without /etc/group).
        let bare = Group::resolve("4123456").unwrap();
        assert_eq!(bare.gid, 4_123_456);
        assert_eq!(bare.name, "4123456");
        let e = Group::resolve("no-such-group-here").unwrap_err();
        assert!(e.contains("no group named \"no-such-group-here\""), "{e}");
    }

    #[test]
    fn root_and_members_are_admitted_others_are_told_the_group() {
        let g = Group {
            gid: 4_123_456,
            name: "sockpath".into(),
        };
        let peer = |uid, gid| Peer {
            pid: None,
            uid,
            gid,
        };
        assert!(admit(&peer(0, 0), Some(&g)).is_ok());
        assert!(admit(&peer(0, 0), None).is_ok());
        assert!(admit(&peer(1000, 4_123_456), Some(&g)).is_ok());
        let e = admit(&peer(1000, 1000), Some(&g)).unwrap_err();
        assert!(
            e.contains("group sockpath") && e.contains("uid 1000"),
            "{e}"
        );
        assert!(admit(&peer(1000, 4_123_456), None)
            .unwrap_err()
            .contains("root only"));
        // Our own supplementary groups are read from /proc.
        let me = std::process::id() as i32;
        let mine = supplementary_groups(me);
        if let Some(&sup) = mine.iter().find(|&&g| g != 0) {
            let p = Peer {
                pid: Some(me),
                uid: 1000,
                gid: 1000,
            };
            let g = Group {
                gid: sup,
                name: "x".into(),
            };
            assert!(admit(&p, Some(&g)).is_ok());
        }
    }
}
