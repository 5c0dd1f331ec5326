use super::*;

/// The running kernel's BTF read three ways (mapped from sysfs, mapped from a memory copy,
/// parsed in full as before) gives the same offsets, features and names.
#[test]
fn mapped_copied_and_parsed_btf_agree() {
    if !Path::new(VMLINUX_BTF).exists() {
        return;
    }
    let mapped = KernelBtf::load().unwrap();
    let copy = memfd_copy(VMLINUX_BTF).unwrap();
    let copied = KernelBtf {
        btf: Btf::from_file_with_backend(
            format!("/proc/self/fd/{}", copy.as_raw_fd()),
            Backend::Mmap,
        )
        .unwrap(),
    };
    let parsed = KernelBtf {
        btf: Btf::from_file(VMLINUX_BTF).unwrap(),
    };
    let facts = |b: &KernelBtf| {
        format!(
            "{:?} {:?} {:?} {:?} {:?}",
            b.offsets().unwrap(),
            b.tracepoint_arity("kfree_skb"),
            b.function_arity("tcp_v4_send_reset"),
            {
                let mut v: Vec<_> = b
                    .enum_names("skb_drop_reason", "SKB_DROP_REASON_")
                    .into_iter()
                    .collect();
                v.sort();
                v
            },
            b.has_function("tcp_v4_rcv"),
        )
    };
    assert_eq!(facts(&mapped), facts(&parsed));
    assert_eq!(facts(&copied), facts(&parsed));
}

/// aya finds the names sockpath attaches to at the same ids in the reduced BTF as in its
/// own parse of the kernel's full BTF, and the names the kernel lacks in neither.
#[test]
fn reduced_btf_has_the_kernels_ids() {
    if !Path::new(VMLINUX_BTF).exists() {
        return;
    }
    let names = crate::kernel::attach_names();
    let reduced = KernelBtf::load().unwrap().for_aya(&names).unwrap();
    let full = aya::Btf::from_sys_fs().unwrap();
    let mut found = 0;
    for (name, func) in &names {
        let kind = if *func {
            aya_obj::btf::BtfKind::Func
        } else {
            aya_obj::btf::BtfKind::Typedef
        };
        let want = full.id_by_type_name_kind(name, kind).ok();
        assert_eq!(
            reduced.id_by_type_name_kind(name, kind).ok(),
            want,
            "{name}"
        );
        found += usize::from(want.is_some());
    }
    assert!(found > 5, "only {found} of {} names found", names.len());
}

#[test]
fn prefix_is_removed_only_when_present() {
    assert_eq!(
        strip_prefix("SKB_DROP_REASON_NO_SOCKET", "SKB_DROP_REASON_"),
        "NO_SOCKET"
    );
    assert_eq!(strip_prefix("OTHER", "SKB_DROP_REASON_"), "OTHER");
}
