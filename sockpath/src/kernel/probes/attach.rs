//! Loading and attaching the programs of one hook, and undoing it when the hook is refused.

use aya::{
    programs::{BtfTracePoint, FEntry, FExit, KProbe, ProgramError, TracePoint},
    Btf, Ebpf,
};
use sockpath_ebpf::event::SyscallKind;

use super::{
    error::{AttachError, HookRefused},
    precheck::precheck,
    KernelFacts,
};
use crate::hooks::{syscall_tracepoint, Attach, Hook, Program};

/// `SOCKPATH_ONLY_PROGRAMS=a,b`: attach only these programs (by name, as `bpftool prog` lists
/// them), the others counted as attached but left out. A measuring aid, not a mode of use: it
/// is how the README's cost of each hook was measured (the other-port load with one group of
/// hooks attached at a time); journeys are then incomplete.
fn left_out(program: &str) -> bool {
    match std::env::var("SOCKPATH_ONLY_PROGRAMS") {
        Ok(only) => !only.split(',').any(|s| s.trim() == program),
        Err(_) => false,
    }
}

/// `group/name` of a classic tracepoint, split for aya.
fn split(path: &'static str) -> (&'static str, &'static str) {
    path.split_once('/').unwrap_or(("", path))
}

fn attach_one(ebpf: &mut Ebpf, btf: &Btf, program: &Program) -> Result<(), AttachError> {
    if left_out(program.name) {
        return Ok(());
    }
    let prog = ebpf
        .program_mut(program.name)
        .ok_or(AttachError::Missing(program.name))?;
    let e = |e: ProgramError| AttachError::program(&e);
    match program.attach {
        Attach::TpBtf { tracepoint, .. } => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(e)?;
            p.load(tracepoint, btf).map_err(e)?;
            p.attach().map_err(e)?;
        }
        Attach::Tracepoint { path } => {
            let p: &mut TracePoint = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            let (group, name) = split(path);
            p.attach(group, name)
                .map_err(|err| AttachError::tracepoint(path, &err))?;
        }
        Attach::Syscalls { exit, accept } => {
            let p: &mut TracePoint = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            // Reads are told by the read hooks (see sockpath-ebpf's hooks/syscalls.rs).
            let accepts =
                |k: &SyscallKind| matches!(k, SyscallKind::Accept | SyscallKind::Accept4) == accept;
            for k in SyscallKind::ALL
                .into_iter()
                .filter(|k| !k.is_read() && accepts(k))
            {
                let path = syscall_tracepoint(k, exit);
                let (group, name) = split(path);
                p.attach(group, name)
                    .map_err(|err| AttachError::tracepoint(path, &err))?;
            }
        }
        Attach::Fentry { function } => {
            let p: &mut FEntry = prog.try_into().map_err(e)?;
            p.load(function, btf)
                .map_err(|e| AttachError::trampoline(&e))?;
            p.attach().map_err(|e| AttachError::trampoline(&e))?;
        }
        Attach::Fexit { function } => {
            let p: &mut FExit = prog.try_into().map_err(e)?;
            p.load(function, btf)
                .map_err(|e| AttachError::trampoline(&e))?;
            p.attach().map_err(|e| AttachError::trampoline(&e))?;
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            let p: &mut KProbe = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            p.attach(function, 0).map_err(e)?;
        }
    }
    Ok(())
}

/// Detaches and unloads a program of a hook that was refused after it attached.
fn unload(ebpf: &mut Ebpf, program: &Program) {
    let Some(prog) = ebpf.program_mut(program.name) else {
        return;
    };
    let _ = match program.attach {
        Attach::TpBtf { .. } => <&mut BtfTracePoint>::try_from(prog).map(|p| p.unload()),
        Attach::Tracepoint { .. } | Attach::Syscalls { .. } => {
            <&mut TracePoint>::try_from(prog).map(|p| p.unload())
        }
        Attach::Fentry { .. } => <&mut FEntry>::try_from(prog).map(|p| p.unload()),
        Attach::Fexit { .. } => <&mut FExit>::try_from(prog).map(|p| p.unload()),
        Attach::Kprobe { .. } | Attach::Kretprobe { .. } => {
            <&mut KProbe>::try_from(prog).map(|p| p.unload())
        }
    };
}

/// Attaches every program of `hook`; on a required program's failure, undoes the others.
/// Returns the optional programs that could not attach, with why.
pub fn attach_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    facts: &KernelFacts,
    hook: &Hook,
) -> Result<Vec<(String, String)>, HookRefused> {
    let mut done: Vec<&Program> = Vec::new();
    let mut partial = Vec::new();
    for p in hook.programs {
        let r = match precheck(facts, p.attach) {
            Some(why) => Err(why),
            None => attach_one(ebpf, btf, p),
        };
        if let Err(AttachError::TrampolinesRefused) = r {
            // One refusal says it for all: later trampoline hooks are not even loaded.
            facts.trampolines_refused.set(true);
        }
        match r {
            Ok(()) => done.push(p),
            Err(why) if p.optional => partial.push((p.attach.describe(), why.to_string())),
            Err(why) => {
                for d in done {
                    unload(ebpf, d);
                }
                unload(ebpf, p);
                return Err(HookRefused::Program {
                    attach: p.attach.describe(),
                    why,
                });
            }
        }
    }
    if done.is_empty() {
        return Err(HookRefused::NothingAttached);
    }
    Ok(partial)
}
