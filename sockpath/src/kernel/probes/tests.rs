use std::collections::BTreeMap;

use aya_obj::ProgramSection;

use crate::{
    hooks::{self, HookKind},
    kernel::EBPF_OBJECT,
};

/// The kind of hook an object's program section declares.
fn kind(section: &ProgramSection) -> Option<HookKind> {
    Some(match section {
        ProgramSection::BtfTracePoint => HookKind::TpBtf,
        ProgramSection::TracePoint => HookKind::Tracepoint,
        ProgramSection::FEntry { .. } => HookKind::Fentry,
        ProgramSection::FExit { .. } => HookKind::Fexit,
        ProgramSection::KProbe => HookKind::Kprobe,
        ProgramSection::KRetProbe => HookKind::Kretprobe,
        _ => return None,
    })
}

/// The programs of the eBPF object sockpath embeds, parsed as aya would before loading them
/// (no kernel needed), against the hook table: every program is in the table, the table names
/// no program the object lacks, and each attaches as its section says.
#[test]
fn the_hook_table_and_the_ebpf_object_have_the_same_programs() {
    let object = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded eBPF object parses");
    let in_object: BTreeMap<&str, Option<HookKind>> = object
        .programs
        .iter()
        .map(|(name, p)| (name.as_str(), kind(&p.section)))
        .collect();
    let in_table: BTreeMap<&str, HookKind> = hooks::programs()
        .map(|(_, p)| (p.name, p.attach.kind()))
        .collect();
    let untabled: Vec<&&str> = in_object
        .keys()
        .filter(|n| !in_table.contains_key(*n))
        .collect();
    let absent: Vec<&&str> = in_table
        .keys()
        .filter(|n| !in_object.contains_key(*n))
        .collect();
    assert!(
        untabled.is_empty() && absent.is_empty(),
        "programs of the eBPF object missing from the hook table: {untabled:?}; \
         programs the hook table names that the object lacks: {absent:?}"
    );
    for (name, kind) in &in_table {
        assert_eq!(
            in_object[name],
            Some(*kind),
            "{name}: the table attaches it as {kind:?}, its section in the object says otherwise"
        );
    }
}
