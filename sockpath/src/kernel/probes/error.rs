//! Why a program or a hook could not attach, classified by the errno aya's errors carry rather
//! than by the words of their messages.

use aya::{
    programs::{KProbeError, ProgramError, TracePointError},
    sys::SyscallError,
};

/// The kernel's own "operation not supported": not a libc errno, but what the bpf syscall
/// returns when a trampoline cannot be built for a function.
pub const ENOTSUPP: i32 = 524;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Found without loading anything: the attach point is missing or lacks an argument.
    #[error("{0}")]
    Unavailable(String),
    #[error("program {0} missing from the eBPF object")]
    Missing(&'static str),
    /// Some kernels (this project's 6.18 build among them) refuse every fentry/fexit program
    /// with EPERM before the verifier runs: one refusal says it for all.
    #[error("this kernel refuses fentry/fexit programs (BPF_PROG_LOAD fails with EPERM)")]
    TrampolinesRefused,
    /// ENOTSUPP from the trampoline attach: seen on 6.1 for functions with more than six
    /// arguments (`__inet_lookup_established` has eight).
    #[error("the kernel cannot attach a trampoline there (ENOTSUPP, error 524): {0}")]
    TrampolineUnsupported(String),
    /// Any other failure, with aya's message chain (the verifier log shortened).
    #[error("{0}")]
    Program(String),
    /// A tracepoint of several the program attaches to refused it.
    #[error("tracepoint {tracepoint}: {why}")]
    Tracepoint {
        tracepoint: &'static str,
        why: String,
    },
}

impl AttachError {
    pub fn program(e: &ProgramError) -> Self {
        AttachError::Program(chain(e))
    }

    /// A trampoline (fentry/fexit) program's load or attach failure.
    pub fn trampoline(e: &ProgramError) -> Self {
        match errno(e) {
            Some(libc::EPERM) => AttachError::TrampolinesRefused,
            Some(ENOTSUPP) => AttachError::TrampolineUnsupported(chain(e)),
            _ => AttachError::program(e),
        }
    }

    pub fn tracepoint(tracepoint: &'static str, e: &ProgramError) -> Self {
        AttachError::Tracepoint {
            tracepoint,
            why: chain(e),
        }
    }
}

/// The errno of the system call behind an aya program error, where it carries one.
pub fn errno(e: &ProgramError) -> Option<i32> {
    let io = match e {
        ProgramError::LoadError { io_error, .. } => io_error,
        ProgramError::SyscallError(SyscallError { io_error, .. }) => io_error,
        ProgramError::IOError(io_error) => io_error,
        ProgramError::TracePointError(TracePointError::FileError { io_error, .. }) => io_error,
        ProgramError::KProbeError(KProbeError::FileError { io_error, .. }) => io_error,
        _ => return None,
    };
    io.raw_os_error()
}

/// The error and its sources on one line. Verifier logs can be long: the first line says which
/// call failed, the last ones why. The log ends with statistics ("verification time",
/// "processed N insns"); the lines just before them are the refusal.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    let lines: Vec<&str> = s.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("verification time"))
        .unwrap_or(lines.len());
    if end <= 4 {
        return lines.join(" | ");
    }
    let mut short = vec![lines[0], "..."];
    short.extend_from_slice(&lines[end - 3..end]);
    short.extend_from_slice(&lines[lines.len() - 1..]);
    short.join(" | ")
}

/// A hook refused: the program that failed, or none attached.
#[derive(Debug, thiserror::Error)]
pub enum HookRefused {
    #[error("{attach}: {why}")]
    Program { attach: String, why: AttachError },
    #[error("no program of it could attach")]
    NothingAttached,
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn load_error(errno: i32) -> ProgramError {
        ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        }
    }

    fn syscall_error(errno: i32) -> ProgramError {
        ProgramError::SyscallError(SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(errno),
        })
    }

    #[test]
    fn trampoline_failures_are_told_apart_by_errno() {
        assert!(matches!(
            AttachError::trampoline(&load_error(libc::EPERM)),
            AttachError::TrampolinesRefused
        ));
        assert!(matches!(
            AttachError::trampoline(&syscall_error(ENOTSUPP)),
            AttachError::TrampolineUnsupported(_)
        ));
        assert!(matches!(
            AttachError::trampoline(&load_error(libc::EINVAL)),
            AttachError::Program(_)
        ));
        assert!(matches!(
            AttachError::trampoline(&ProgramError::NotLoaded),
            AttachError::Program(_)
        ));
        assert_eq!(errno(&syscall_error(libc::ENOENT)), Some(libc::ENOENT));
    }

    #[test]
    fn messages_stay_as_they_were() {
        assert_eq!(
            AttachError::trampoline(&load_error(libc::EPERM)).to_string(),
            "this kernel refuses fentry/fexit programs (BPF_PROG_LOAD fails with EPERM)"
        );
        let unsupported = AttachError::trampoline(&syscall_error(ENOTSUPP)).to_string();
        assert!(
            unsupported
                .starts_with("the kernel cannot attach a trampoline there (ENOTSUPP, error 524): "),
            "{unsupported}"
        );
        assert!(unsupported.contains("os error 524"), "{unsupported}");
    }

    #[test]
    fn long_verifier_logs_keep_the_call_and_the_refusal() {
        let log = "load failed\n0: r1 = 1\n1: r2 = 2\n2: call unknown#184\ninvalid func unknown#184\nverification time 10 usec\nprocessed 3 insns";
        let e = io::Error::other(log);
        assert_eq!(
            chain(&e),
            "load failed | ... | 1: r2 = 2 | 2: call unknown#184 | invalid func unknown#184 | processed 3 insns"
        );
    }
}
