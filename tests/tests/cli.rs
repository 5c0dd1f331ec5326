//! Bad input gets a clear message and exit code 2, never a panic; missing privileges are named.

use std::process::Command;

use sockpath_tests::bin;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
    (out.status.code(), stderr)
}

#[test]
fn bad_input_is_exit_code_2_with_a_message() {
    for (args, needle) in [
        (&["watch", "--port", "0"][..], "0 is not in 1..=65535"),
        (&["watch", "--port", "65536"], "65536 is not in 1..=65535"),
        (&["watch", "--port", "http"], "invalid digit"),
        (&["watch", "--addr", "300.1.2.3"], "invalid IP address"),
        (
            &["watch", "--iface", "nosuchif0"],
            "no interface named \"nosuchif0\"",
        ),
        (&["watch", "--proto", "sctp"], "invalid value 'sctp'"),
        (&["watch", "--snaplen", "20"], "20 is not in 128..=1536"),
        (&["watch", "--ring-kib", "3"], "power of two"),
        (&["watch", "--bogus"], "unexpected argument '--bogus'"),
        (&["nosuchcommand"], "unrecognized subcommand"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in: {stderr}"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    assert_eq!(run(&["--help"]).0, Some(0));
    assert_eq!(run(&["--version"]).0, Some(0));
    assert_eq!(run(&["watch", "--help"]).0, Some(0));
}

#[test]
fn without_root_it_says_what_it_needs() {
    // Drop to nobody with no capabilities (setpriv from util-linux).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin())
        .args(["watch", "--port", "4000"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(stderr.contains("sudo sockpath watch"), "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
}
