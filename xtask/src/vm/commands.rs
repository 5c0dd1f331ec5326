//! What the guest runs, in order. Adding a command (a VM-only test, another `sockpath`
//! invocation whose output the README needs) is adding an entry in [`guest_commands`].

use std::path::PathBuf;

use super::artifacts::Artifacts;

/// Where the initramfs puts sockpath.
pub const GUEST_SOCKPATH: &str = "/usr/local/bin/sockpath";
/// Where the initramfs puts the tests' helper process.
pub const GUEST_PEER: &str = "/usr/local/bin/sockpath-test-peer";
/// Where the initramfs puts the integration-test executables.
pub const GUEST_TESTS_DIR: &str = "/opt/sockpath-tests";

/// What a command is, for the report: a test binary's result is a test result; a `Run`
/// is something whose output is wanted (it still fails the run when it exits non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Test,
    Run,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Test => "test",
            Kind::Run => "run",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "test" => Some(Kind::Test),
            "run" => Some(Kind::Run),
            _ => None,
        }
    }
}

/// One command in the guest: its sentinel name, argv, environment and time limit.
#[derive(Debug, Clone)]
pub struct GuestCommand {
    pub kind: Kind,
    /// One word: it is part of the sentinel lines.
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The guest kills the command after this long (busybox `timeout`), so one hung test
    /// cannot use up the whole VM's time.
    pub timeout_s: u64,
    /// The command's console output is saved as target/vm/<kernel>/<this file>.
    pub save_as: Option<&'static str>,
    /// The table shows the whole output (else only the end of a failed run's output).
    pub show_output: bool,
}

/// A file the guest needs that is not a tool: host path, guest path.
#[derive(Debug, Clone)]
pub struct GuestFile {
    pub host: PathBuf,
    pub guest: String,
}

/// Executables built here that the guest needs, and where they go.
pub fn guest_files(a: &Artifacts) -> Vec<GuestFile> {
    let mut files = vec![
        GuestFile {
            host: a.sockpath.clone(),
            guest: GUEST_SOCKPATH.into(),
        },
        GuestFile {
            host: a.peer.clone(),
            guest: GUEST_PEER.into(),
        },
    ];
    files.extend(a.tests.iter().map(|t| GuestFile {
        host: t.path.clone(),
        guest: format!("{GUEST_TESTS_DIR}/{}", t.name),
    }));
    files
}

/// Test executables that run on the host only. The pcapng tests drive tshark, whose hundreds of
/// dissector libraries and data files the initramfs does not carry; what they check (the export
/// of frames captured at netif_receive_skb, the annotation of a capture) does not depend on the
/// kernel's hooks, which the other tests cover on every kernel. The prometheus test runs Debian's
/// Prometheus server, which the guests do not carry either.
const HOST_ONLY: &[&str] = &["pcapng", "prometheus"];

/// Everything the guest runs, in order. `test_args` go to every test executable (libtest
/// arguments: a name filter, `--nocapture`, ...).
pub fn guest_commands(a: &Artifacts, test_args: &[String]) -> Vec<GuestCommand> {
    let mut cmds = vec![GuestCommand {
        kind: Kind::Run,
        name: "probes".into(),
        // JSON: the README's per-kernel hook table is made from it (docs/kernels/).
        argv: vec![GUEST_SOCKPATH.into(), "probes".into(), "--json".into()],
        env: vec![],
        timeout_s: 300,
        save_as: Some("probes.json"),
        show_output: false,
    }];
    for t in a
        .tests
        .iter()
        .filter(|t| !HOST_ONLY.contains(&t.name.as_str()))
    {
        let mut argv = vec![
            format!("{GUEST_TESTS_DIR}/{}", t.name),
            // One sockpath at a time sees only its own test's traffic (as on the host).
            "--test-threads=1".into(),
            // The serial console is a tty: no colour codes in the log.
            "--color=never".into(),
        ];
        argv.extend(test_args.iter().cloned());
        cmds.push(GuestCommand {
            kind: Kind::Test,
            name: t.name.clone(),
            argv,
            env: vec![
                ("SOCKPATH_BIN".into(), GUEST_SOCKPATH.into()),
                ("SOCKPATH_TEST_PEER".into(), GUEST_PEER.into()),
                // Debian's stock kernels have kprobes and fentry: the receive-path stages
                // must be observed there, not inferred.
                ("SOCKPATH_EXPECT_HOOKS".into(), "1".into()),
            ],
            timeout_s: 900,
            save_as: None,
            show_output: false,
        });
    }
    cmds
}

/// `sh -c COMMAND` in the guest, for looking around a kernel by hand (`cargo xtask vm --sh`).
pub fn shell(n: usize, command: &str) -> GuestCommand {
    GuestCommand {
        kind: Kind::Run,
        name: format!("sh{n}"),
        argv: vec!["sh".into(), "-c".into(), command.into()],
        env: vec![("SOCKPATH_BIN".into(), GUEST_SOCKPATH.into())],
        timeout_s: 600,
        save_as: None,
        show_output: true,
    }
}
