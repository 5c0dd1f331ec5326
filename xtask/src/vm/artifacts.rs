//! What the guest runs, built on the host: TCG runs guest code roughly ten times slower than
//! the host, so nothing is compiled inside the VM.

use std::{path::PathBuf, process::Stdio};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use crate::cmd::{cargo, root, show};

/// An integration-test executable (one per file in tests/tests/).
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// The test target's name: the file name without `.rs`.
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug)]
pub struct Artifacts {
    pub sockpath: PathBuf,
    pub tests: Vec<TestBinary>,
    /// The tests' helper process (a listener of its own).
    pub peer: PathBuf,
}

pub fn build() -> anyhow::Result<Artifacts> {
    let sockpath = crate::cmd::build_sockpath_release()?;
    let tests = build_tests()?;
    if tests.is_empty() {
        bail!("cargo built no integration-test executable for sockpath-tests");
    }
    // `cargo test --no-run` builds the package's binaries too.
    let peer = root().join("target/debug/sockpath-test-peer");
    if !peer.is_file() {
        bail!("{} was not built", peer.display());
    }
    Ok(Artifacts {
        sockpath,
        tests,
        peer,
    })
}

/// `cargo test --no-run` and the executables it names: the hash in their file names changes
/// with every build, so they are taken from cargo's JSON messages rather than guessed.
fn build_tests() -> anyhow::Result<Vec<TestBinary>> {
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "sockpath-tests",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .stderr(Stdio::inherit());
    eprintln!("+ {}", show(&c));
    let out = c
        .output()
        .with_context(|| format!("could not start {}", show(&c)))?;
    if !out.status.success() {
        return Err(anyhow!("{} failed ({})", show(&c), out.status));
    }
    Ok(test_executables(&String::from_utf8_lossy(&out.stdout)))
}

/// Integration-test executables in cargo's JSON messages (the library's own unit-test
/// executable is left out: the harness has no tests that need a kernel).
pub fn test_executables(json_lines: &str) -> Vec<TestBinary> {
    let mut tests: Vec<TestBinary> = json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["profile"]["test"] == true)
        .filter(|v| {
            v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|v| {
            Some(TestBinary {
                name: v["target"]["name"].as_str()?.to_string(),
                path: PathBuf::from(v["executable"].as_str()?),
            })
        })
        .collect();
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    tests.dedup_by(|a, b| a.name == b.name);
    tests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_integration_tests_only() {
        let json = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"sockpath_tests"},"profile":{"test":true},"executable":"/t/deps/sockpath_tests-1"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"tcp_loopback"},"profile":{"test":true},"executable":"/t/deps/tcp_loopback-2"}
{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"serde"},"profile":{"test":false},"executable":null}
{"reason":"build-finished","success":true}"#;
        let t = test_executables(json);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "tcp_loopback");
        assert_eq!(t[0].path, PathBuf::from("/t/deps/tcp_loopback-2"));
    }
}
