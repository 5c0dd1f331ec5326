//! The README's table of the hook serving each stage on each kernel the project runs on, made
//! from what `sockpath probes --json` printed there: docs/kernels/<kernel>.json, copied from
//! target/vm/<kernel>/probes.json after `cargo xtask vm` (and from this machine's own run) by
//! `cargo xtask kernel-table`, which also rewrites the README's copy. A unit test keeps the
//! README's copy equal to what these files make.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use crate::cmd::{as_root, build_sockpath, output, root};

/// One column: the file under docs/kernels/ and who ships the kernel.
pub struct Column {
    pub file: &'static str,
    /// The VM runner's label (target/vm/<label>/probes.json); None for this machine's kernel.
    pub vm_label: Option<&'static str>,
    pub title: &'static str,
    pub shipped_by: &'static str,
}

pub const COLUMNS: &[Column] = &[
    Column {
        file: "5.10.json",
        vm_label: Some("5.10"),
        title: "5.10",
        shipped_by: "Debian 11 (bullseye)",
    },
    Column {
        file: "6.1.json",
        vm_label: Some("6.1"),
        title: "6.1",
        shipped_by: "Debian 12 (bookworm)",
    },
    Column {
        file: "6.12.json",
        vm_label: Some("6.12"),
        title: "6.12",
        shipped_by: "Debian 13 (trixie); bookworm-security",
    },
    Column {
        file: "sid.json",
        vm_label: Some("sid"),
        title: "sid",
        shipped_by: "Debian unstable (sid)",
    },
    Column {
        file: "host.json",
        vm_label: None,
        title: "this machine",
        shipped_by: "the project's build machine (not a distribution's kernel: tracepoints only)",
    },
];

pub const BEGIN: &str =
    "<!-- kernel table: `cargo xtask kernel-table` makes it from docs/kernels/; a unit test keeps this copy equal -->\n";
pub const END: &str = "<!-- end of kernel table -->";

/// The markdown table for these probes reports (one per column, in [`COLUMNS`]' order).
pub fn render(reports: &[(&Column, Value)]) -> anyhow::Result<String> {
    let mut out = String::from("| stage |");
    for (c, r) in reports {
        let release = r["kernel"].as_str().unwrap_or("?");
        let _ = write!(out, " {}: `{release}`, {} |", c.title, c.shipped_by);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    let first = reports.first().ok_or_else(|| anyhow!("no probes report"))?;
    let names: Vec<&str> = stages(&first.1)?
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("?"))
        .collect();
    // What a fallback loses, numbered once each, told under the table.
    let mut losses: Vec<String> = Vec::new();
    for name in &names {
        let _ = write!(out, "| {name} |");
        for (c, r) in reports {
            let stage = stages(r)?
                .iter()
                .find(|s| s["name"].as_str() == Some(name))
                .ok_or_else(|| anyhow!("{}: no stage \"{name}\"", c.file))?;
            let _ = write!(out, " {} |", cell(stage, &mut losses));
        }
        out.push('\n');
    }
    if !losses.is_empty() {
        out.push('\n');
        for (i, l) in losses.iter().enumerate() {
            let _ = writeln!(out, "{}. a fallback: loses {l}", i + 1);
        }
    }
    Ok(out)
}

fn stages(report: &Value) -> anyhow::Result<&Vec<Value>> {
    report["stages"]
        .as_array()
        .ok_or_else(|| anyhow!("a probes report without stages"))
}

/// The hook serving the stage (`inferred` for none), the optional programs missing, and the
/// number of what a fallback loses.
fn cell(stage: &Value, losses: &mut Vec<String>) -> String {
    let mut s = match stage["chosen"].as_str() {
        Some(h) => h.replace(" + ", ", "),
        None => "inferred".to_string(),
    };
    for p in stage["partial"].as_array().into_iter().flatten() {
        let _ = write!(s, " (without {})", p[0].as_str().unwrap_or("?"));
    }
    if let Some(l) = stage["loses"].as_str() {
        let n = match losses.iter().position(|x| x == l) {
            Some(i) => i + 1,
            None => {
                losses.push(l.to_string());
                losses.len()
            }
        };
        let _ = write!(s, " ({n})");
    }
    s.replace('|', "\\|")
}

/// The JSON in a command's console output: from the first line that opens an object to the
/// last that closes it (a kernel message or warning may come before or after).
pub fn json_in(text: &str) -> anyhow::Result<Value> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON object in the probes output"))?;
    let end = lines
        .iter()
        .rposition(|l| l.starts_with('}'))
        .ok_or_else(|| anyhow!("no end of the JSON object in the probes output"))?;
    if end < start {
        bail!("no whole JSON object in the probes output");
    }
    Ok(serde_json::from_str(&lines[start..=end].join("\n"))?)
}

/// Replaces the README's table with `table`.
pub fn with_table(readme: &str, table: &str) -> anyhow::Result<String> {
    let start = readme
        .find(BEGIN)
        .ok_or_else(|| anyhow!("README.md has no kernel table start marker"))?
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .ok_or_else(|| anyhow!("README.md has no kernel table end marker"))?;
    Ok(format!("{}{table}{}", &readme[..start], &readme[end..]))
}

/// The reports under `dir`, in [`COLUMNS`]' order; a kernel without one has no column.
fn load(dir: &Path) -> anyhow::Result<Vec<(&'static Column, Value)>> {
    COLUMNS
        .iter()
        .filter(|c| dir.join(c.file).is_file())
        .map(|c| {
            let p = dir.join(c.file);
            let text =
                fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((c, serde_json::from_str(&text)?))
        })
        .collect()
}

/// `cargo xtask kernel-table`: copies each kernel's probes report (those the VM runs left under
/// target/vm/, and this machine's, as root) into docs/kernels/, and rewrites the README's table.
pub fn run() -> anyhow::Result<()> {
    let docs = root().join("docs/kernels");
    fs::create_dir_all(&docs)?;
    for c in COLUMNS {
        let text = match c.vm_label {
            Some(label) => {
                let p = root().join("target/vm").join(label).join("probes.json");
                match fs::read_to_string(&p) {
                    Ok(t) => t,
                    Err(_) => {
                        eprintln!(
                            "xtask kernel-table: no {} (run `cargo xtask vm --kernel {label}`): \
                             docs/kernels/{} kept",
                            p.display(),
                            c.file
                        );
                        continue;
                    }
                }
            }
            None => {
                let bin = build_sockpath()?;
                let mut cmd = as_root(&bin.to_string_lossy());
                cmd.args(["probes", "--json"]);
                output(&mut cmd).ok_or_else(|| anyhow!("sockpath probes --json failed here"))?
            }
        };
        let v = json_in(&text).with_context(|| format!("the probes report for {}", c.title))?;
        fs::write(docs.join(c.file), serde_json::to_string_pretty(&v)? + "\n")?;
    }
    let table = render(&load(&docs)?)?;
    let readme_path = root().join("README.md");
    let readme = fs::read_to_string(&readme_path)?;
    fs::write(&readme_path, with_table(&readme, &table)?)?;
    eprintln!("xtask kernel-table: README.md's kernel table rewritten from docs/kernels/");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_holds_the_kernel_table() {
        let table = render(&load(&root().join("docs/kernels")).unwrap()).unwrap();
        let readme = fs::read_to_string(root().join("README.md")).unwrap();
        assert!(
            with_table(&readme, &table).unwrap() == readme,
            "README.md's kernel table is not what docs/kernels/ makes: run \
             `cargo xtask kernel-table`\n{table}"
        );
    }

    #[test]
    fn cells_and_losses() {
        let report = |chosen: Value, loses: Value| {
            serde_json::json!({"kernel": "5.10.0-32-cloud-amd64", "stages": [
                {"name": "read by a process", "chosen": chosen, "loses": loses,
                 "partial": [["fexit/inet6_recvmsg", "no such function"]]},
            ]})
        };
        let c = &COLUMNS[..2];
        let t = render(&[
            (
                &c[0],
                report("fexit/inet_recvmsg + fexit/x".into(), "the call".into()),
            ),
            (&c[1], report(Value::Null, Value::Null)),
        ])
        .unwrap();
        assert_eq!(
            t,
            "| stage | 5.10: `5.10.0-32-cloud-amd64`, Debian 11 (bullseye) | 6.1: \
             `5.10.0-32-cloud-amd64`, Debian 12 (bookworm) |\n|---|---|---|\n\
             | read by a process | fexit/inet_recvmsg, fexit/x (without fexit/inet6_recvmsg) (1) \
             | inferred (without fexit/inet6_recvmsg) |\n\n1. a fallback: loses the call\n"
        );
    }

    #[test]
    fn json_among_console_lines() {
        let v = json_in("warning: x\n{\n  \"kernel\": \"6.1\"\n}\n").unwrap();
        assert_eq!(v["kernel"], "6.1");
        assert!(json_in("no json").is_err());
    }
}
