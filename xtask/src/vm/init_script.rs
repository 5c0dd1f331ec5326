//! The guest's /init: a busybox shell script that prepares what sockpath and its tests expect
//! of a normal machine, runs the commands, and prints one sentinel line per command for the
//! host to parse (the serial console is the only channel out of the VM).

use std::fmt::Write as _;

use super::commands::GuestCommand;

/// Every line the host parses begins with this.
pub const SENTINEL: &str = "SOCKPATH-VM:";
/// Where the initramfs puts the (unpacked) kernel modules.
pub const GUEST_MODULES_DIR: &str = "/usr/lib/sockpath-vm/modules";

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The /init script. `modules` are module names in load order (dependencies first).
pub fn render(modules: &[String], commands: &[GuestCommand]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        r#"#!/bin/sh
# Written by `cargo xtask vm` (xtask/src/vm/init_script.rs).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
setup_error() {{ echo "{SENTINEL} setup-error $*"; }}
m() {{ mount "$@" || setup_error "mount $*"; }}
m -t proc proc /proc
m -t sysfs sysfs /sys
m -t devtmpfs devtmpfs /dev
# ip netns keeps its namespace files in /run/netns (older builds: /var/run/netns, a link here).
m -t tmpfs -o mode=0755 tmpfs /run
m -t tmpfs -o mode=1777 tmpfs /tmp
m -t bpf bpf /sys/fs/bpf
m -t tracefs tracefs /sys/kernel/tracing
m -t debugfs debugfs /sys/kernel/debug
mkdir -p /run/netns /dev/pts /dev/shm
m -t devpts devpts /dev/pts
ip link set lo up || setup_error "ip link set lo up"
echo "{SENTINEL} kernel $(uname -r)"
"#
    ));
    for m in modules {
        let _ = writeln!(
            s,
            "insmod {GUEST_MODULES_DIR}/{m}.ko || setup_error \"insmod {m}\""
        );
    }
    for c in commands {
        let kind = c.kind.as_str();
        let name = &c.name;
        let env: Vec<String> = c
            .env
            .iter()
            .map(|(k, v)| quote(&format!("{k}={v}")))
            .collect();
        let argv: Vec<String> = c.argv.iter().map(|a| quote(a)).collect();
        let _ = write!(
            s,
            r#"
echo "{SENTINEL} begin {kind} {name}"
read t0 _ </proc/uptime
timeout {timeout} env {env} {argv} </dev/null
rc=$?
read t1 _ </proc/uptime
# A blank line first: the command's last line may have had no newline.
echo
echo "{SENTINEL} {kind} {name} exit=$rc uptime=$t0-$t1"
"#,
            timeout = c.timeout_s,
            env = env.join(" "),
            argv = argv.join(" "),
        );
    }
    let _ = write!(
        s,
        r#"
echo "{SENTINEL} DONE"
sync
poweroff -f
"#
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::commands::Kind;

    #[test]
    fn quoting() {
        assert_eq!(quote("/opt/x"), "/opt/x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn script_has_a_sentinel_per_command() {
        let cmds = vec![GuestCommand {
            kind: Kind::Test,
            name: "tcp_loopback".into(),
            argv: vec!["/opt/t".into(), "--test-threads=1".into()],
            env: vec![("SOCKPATH_BIN".into(), "/usr/local/bin/sockpath".into())],
            timeout_s: 60,
            save_as: None,
            show_output: false,
        }];
        let s = render(&["veth".into()], &cmds);
        assert!(s.contains("insmod /usr/lib/sockpath-vm/modules/veth.ko"));
        assert!(s.contains(
            "timeout 60 env SOCKPATH_BIN=/usr/local/bin/sockpath /opt/t --test-threads=1"
        ));
        assert!(s.contains("SOCKPATH-VM: test tcp_loopback exit=$rc uptime=$t0-$t1"));
        assert!(s.trim_end().ends_with("poweroff -f"));
    }
}
