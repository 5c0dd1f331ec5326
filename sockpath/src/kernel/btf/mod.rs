//! Kernel facts from the running kernel's BTF: struct field offsets for the eBPF programs, and
//! the names of kernel enums (drop reasons, reset reasons) for the output.
//!
//! Rust eBPF gets no CO-RE relocations, so this is the one place that knows where fields are.

use std::{collections::HashMap, io::Write as _, path::Path};

use std::os::fd::{AsRawFd as _, OwnedFd};

use btf_rs::{Backend, Btf, Type};
use sockpath_ebpf::config::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "this kernel exposes no BTF ({VMLINUX_BTF} is missing): sockpath needs a kernel built \
         with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.x are)"
    )]
    Missing,
    #[error("could not read the kernel's BTF at {path}: {source}")]
    Read { path: String, source: btf_rs::Error },
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("the kernel's BTF has no field {1} in struct {0}")]
    NoField(String, String),
    #[error("field {1} of struct {0} is a bit field; sockpath needs a whole field there")]
    BitField(String, String),
    #[error("field {1} of struct {0} is {2} bytes; sockpath expects {3}")]
    Size(String, String, usize, usize),
}

/// A field found in a struct: its byte offset and size.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub offset: u32,
    pub size: usize,
}

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Loads the running kernel's BTF.
    pub fn load() -> Result<Self, BtfError> {
        if !Path::new(VMLINUX_BTF).exists() {
            return Err(BtfError::Missing);
        }
        Self::from_file(VMLINUX_BTF)
    }

    /// Reads BTF from `path` without parsing all of it: the file is mapped and types are read
    /// when asked for. (Parsing every type of a kernel's BTF up front took some 35 MiB, most of
    /// the memory a `stats` run peaked at.) Kernels whose sysfs BTF cannot be mapped (older
    /// ones) have it copied into an anonymous memory file that can.
    pub fn from_file(path: &str) -> Result<Self, BtfError> {
        let read = |source| BtfError::Read {
            path: path.to_string(),
            source,
        };
        let btf = match Btf::from_file_with_backend(path, Backend::Mmap) {
            Ok(btf) => btf,
            Err(_) => match memfd_copy(path) {
                Ok(copy) => {
                    let fd = format!("/proc/self/fd/{}", copy.as_raw_fd());
                    Btf::from_file_with_backend(&fd, Backend::Mmap).map_err(read)?
                }
                Err(_) => Btf::from_file(path).map_err(read)?,
            },
        };
        Ok(Self { btf })
    }

    /// The first type id (the lowest, as aya looks it up) of a type named `name` that is a
    /// typedef (`func` false) or a function (`func` true).
    fn first_id(&self, name: &str, func: bool) -> Option<u32> {
        let ids = self.btf.resolve_ids_by_name(name).ok()?;
        ids.into_iter()
            .filter(|&id| {
                matches!(
                    (self.btf.resolve_type_by_id(id), func),
                    (Ok(Type::Typedef(_)), false) | (Ok(Type::Func(_)), true)
                )
            })
            .min()
    }

    /// The BTF aya loads and attaches with: the kernel's type ids of the names sockpath's
    /// programs attach to (`btf_trace_*` typedefs for tp_btf, functions for fentry/fexit), and
    /// nothing else, every other id a placeholder pointer. aya only looks these names up (the
    /// programs have no CO-RE relocations), so this finds the same ids as the kernel's full BTF
    /// in a fraction of the memory (aya's parse of the full BTF took some 20 MiB).
    pub fn for_aya(&self, names: &[(String, bool)]) -> Result<aya::Btf, aya::BtfError> {
        let mut wanted: Vec<(u32, &str, bool)> = names
            .iter()
            .filter_map(|(n, func)| Some((self.first_id(n, *func)?, n.as_str(), *func)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let count = wanted.last().map_or(0, |w| w.0);
        // Type 0 is void, implied; types 1..=count follow, 12 bytes each.
        let mut strings = vec![0u8];
        let mut types = Vec::with_capacity(count as usize * 12);
        let mut next = wanted.iter().peekable();
        for id in 1..=count {
            let (name_off, kind, target) = match next.peek() {
                Some(&&(wid, name, func)) if wid == id => {
                    next.next();
                    let off = strings.len() as u32;
                    strings.extend_from_slice(name.as_bytes());
                    strings.push(0);
                    // BTF_KIND_FUNC (12, global linkage) to a placeholder, or BTF_KIND_TYPEDEF
                    // (8) of void.
                    if func {
                        (off, (12u32 << 24) | 1, 1u32)
                    } else {
                        (off, 8u32 << 24, 0)
                    }
                }
                // BTF_KIND_PTR (2) to void.
                _ => (0, 2u32 << 24, 0),
            };
            for v in [name_off, kind, target] {
                types.extend_from_slice(&v.to_ne_bytes());
            }
        }
        let mut bytes = Vec::with_capacity(24 + types.len() + strings.len());
        bytes.extend_from_slice(&0xeb9fu16.to_ne_bytes());
        bytes.push(1); // version
        bytes.push(0); // flags
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        bytes.extend_from_slice(&types);
        bytes.extend_from_slice(&strings);
        aya::Btf::parse(&bytes, aya::Endianness::default())
    }

    fn find_struct(&self, name: &str) -> Result<btf_rs::Struct, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| BtfError::NoStruct(name.to_string()))?;
        types
            .into_iter()
            .find_map(|t| match t {
                // The full definition; forward declarations have no members.
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoStruct(name.to_string()))
    }

    /// Follows typedefs and qualifiers to the type underneath.
    fn strip(&self, mut t: Type) -> Type {
        for _ in 0..16 {
            match &t {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let Some(bt) = t.as_btf_type() else { return t };
                    match self.btf.resolve_chained_type(bt) {
                        Ok(next) => t = next,
                        Err(_) => return t,
                    }
                }
                _ => return t,
            }
        }
        t
    }

    fn size_of(&self, t: Type) -> usize {
        match self.strip(t) {
            Type::Int(i) => i.size(),
            Type::Ptr(_) => 8,
            Type::Struct(s) | Type::Union(s) => s.size(),
            Type::Enum(e) => e.size(),
            Type::Enum64(e) => e.size(),
            Type::Array(a) => match self.btf.resolve_chained_type(&a) {
                Ok(elem) => self.size_of(elem) * a.len(),
                Err(_) => 0,
            },
            _ => 0,
        }
    }

    /// Looks `name` up among the members of `s`, descending into anonymous structs and unions
    /// (sk_buff keeps most of its fields in those). Returns the member's bit offset.
    fn find_member(
        &self,
        s: &btf_rs::Struct,
        name: &str,
        base_bits: u32,
    ) -> Option<(u32, btf_rs::Member)> {
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            if mname == name {
                return Some((base_bits + m.bit_offset(), m.clone()));
            }
            if mname.is_empty() {
                if let Ok(t) = self.btf.resolve_chained_type(m) {
                    if let Type::Struct(inner) | Type::Union(inner) = self.strip(t) {
                        if let Some(found) =
                            self.find_member(&inner, name, base_bits + m.bit_offset())
                        {
                            return Some(found);
                        }
                    }
                }
            }
        }
        None
    }

    /// Offset and size of `path` ("ns.inum" descends into member structs) in struct `strukt`.
    pub fn field(&self, strukt: &str, path: &str) -> Result<Field, BtfError> {
        let no_field = || BtfError::NoField(strukt.to_string(), path.to_string());
        let mut s = self.find_struct(strukt)?;
        let mut offset_bits = 0u32;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (bits, member) = self.find_member(&s, part, 0).ok_or_else(no_field)?;
            if member.bitfield_size().unwrap_or(0) != 0 {
                return Err(BtfError::BitField(strukt.to_string(), path.to_string()));
            }
            offset_bits += bits;
            let t = self
                .btf
                .resolve_chained_type(&member)
                .map_err(|_| no_field())?;
            if i + 1 == parts.len() {
                return Ok(Field {
                    offset: offset_bits / 8,
                    size: self.size_of(t),
                });
            }
            match self.strip(t) {
                Type::Struct(inner) | Type::Union(inner) => s = inner,
                _ => return Err(no_field()),
            }
        }
        Err(no_field())
    }

    /// Like [`field`](Self::field), also checking the field's width.
    fn sized(&self, strukt: &str, path: &str, size: usize) -> Result<u32, BtfError> {
        let f = self.field(strukt, path)?;
        if f.size != size {
            return Err(BtfError::Size(
                strukt.to_string(),
                path.to_string(),
                f.size,
                size,
            ));
        }
        Ok(f.offset)
    }

    /// Every offset the eBPF programs use, read from this kernel.
    pub fn offsets(&self) -> Result<KernelOffsets, BtfError> {
        let sock_common = self.field("sock", "__sk_common")?.offset;
        let skc = |f: &str, size: usize| -> Result<u32, BtfError> {
            Ok(sock_common + self.sized("sock_common", f, size)?)
        };
        let socket_in_alloc = self.field("socket_alloc", "socket")?.offset;
        let inode_in_alloc = self.field("socket_alloc", "vfs_inode")?.offset;
        Ok(KernelOffsets {
            skb_head: self.sized("sk_buff", "head", 8)?,
            skb_data: self.sized("sk_buff", "data", 8)?,
            skb_len: self.sized("sk_buff", "len", 4)?,
            skb_data_len: self.sized("sk_buff", "data_len", 4)?,
            skb_mac_header: self.sized("sk_buff", "mac_header", 2)?,
            skb_network_header: self.sized("sk_buff", "network_header", 2)?,
            skb_transport_header: self.sized("sk_buff", "transport_header", 2)?,
            skb_protocol: self.sized("sk_buff", "protocol", 2)?,
            skb_dev: self.sized("sk_buff", "dev", 8)?,
            skb_sk: self.sized("sk_buff", "sk", 8)?,
            dev_ifindex: self.sized("net_device", "ifindex", 4)?,
            dev_name: self.sized("net_device", "name", 16)?,
            dev_nd_net: self.sized("net_device", "nd_net", 8)?,
            net_inum: self.sized("net", "ns.inum", 4)?,
            skc_daddr: skc("skc_daddr", 4)?,
            skc_rcv_saddr: skc("skc_rcv_saddr", 4)?,
            skc_dport: skc("skc_dport", 2)?,
            skc_num: skc("skc_num", 2)?,
            skc_family: skc("skc_family", 2)?,
            skc_state: skc("skc_state", 1)?,
            skc_net: skc("skc_net", 8)?,
            skc_v6_daddr: skc("skc_v6_daddr", 16)?,
            skc_v6_rcv_saddr: skc("skc_v6_rcv_saddr", 16)?,
            skc_listener: skc("skc_listener", 8)?,
            sk_protocol: self.sized("sock", "sk_protocol", 2)?,
            sk_type: self.sized("sock", "sk_type", 2)?,
            sk_socket: self.sized("sock", "sk_socket", 8)?,
            sk_err: self.sized("sock", "sk_err", 4)?,
            // A field of struct sock up to 6.x, then sock_common's skc_flags (a union member).
            sk_flags: self
                .sized("sock", "sk_flags", 8)
                .or_else(|_| skc("skc_flags", 8))?,
            sk_reuseport_cb: self.sized("sock", "sk_reuseport_cb", 8)?,
            inet_sport: self.sized("inet_sock", "inet_sport", 2)?,
            tcp_copied_seq: self.sized("tcp_sock", "copied_seq", 4)?,
            socket_sk: self.sized("socket", "sk", 8)?,
            socket_ino: inode_in_alloc - socket_in_alloc + self.sized("inode", "i_ino", 8)?,
            task_files: self.sized("task_struct", "files", 8)?,
            task_stack: self.sized("task_struct", "stack", 8)?,
            files_fdt: self.sized("files_struct", "fdt", 8)?,
            fdt_max_fds: self.sized("fdtable", "max_fds", 4)?,
            fdt_fd: self.sized("fdtable", "fd", 8)?,
            file_private_data: self.sized("file", "private_data", 8)?,
            file_inode: self.sized("file", "f_inode", 8)?,
            inode_mode: self.sized("inode", "i_mode", 2)?,
            inode_ino: self.sized("inode", "i_ino", 8)?,
            tw_substate: self.sized("inet_timewait_sock", "tw_substate", 1)?,
            sk_ack_backlog: self.sized("sock", "sk_ack_backlog", 4)?,
            sk_max_ack_backlog: self.sized("sock", "sk_max_ack_backlog", 4)?,
            icsk_syn_qlen: self.sized("inet_connection_sock", "icsk_accept_queue.qlen", 4)?,
            // Optional: without them a time-wait socket's time left and a listener's namespace
            // sysctls are not told (0 tells the programs not to read them).
            tw_timer_expires: self
                .sized("inet_timewait_sock", "tw_timer.expires", 8)
                .unwrap_or(0),
            net_max_syn_backlog: self
                .sized("net", "ipv4.sysctl_max_syn_backlog", 4)
                .unwrap_or(0),
            net_syncookies: self
                .sized("net", "ipv4.sysctl_tcp_syncookies", 1)
                .unwrap_or(0),
            features: 0,
        })
    }

    /// Value -> name of a kernel enum (e.g. `skb_drop_reason`), with the common prefix removed
    /// (SKB_DROP_REASON_NO_SOCKET -> NO_SOCKET).
    pub fn enum_names(&self, name: &str, prefix: &str) -> HashMap<u64, String> {
        let mut out = HashMap::new();
        let Ok(types) = self.btf.resolve_types_by_name(name) else {
            return out;
        };
        for t in types {
            match t {
                Type::Enum(e) => {
                    for m in &e.members {
                        if let Ok(n) = self.btf.resolve_name(m) {
                            out.insert(m.val() as u64, strip_prefix(&n, prefix));
                        }
                    }
                }
                Type::Enum64(e) => {
                    for m in &e.members {
                        if let Ok(n) = self.btf.resolve_name(m) {
                            out.insert(m.val(), strip_prefix(&n, prefix));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Whether the kernel has a BTF function of this name (what fentry/fexit attach to).
    pub fn has_function(&self, name: &str) -> bool {
        self.function_arity(name).is_some()
    }

    /// Number of parameters of a kernel function, from its BTF prototype.
    pub fn function_arity(&self, name: &str) -> Option<usize> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        types.into_iter().find_map(|t| match t {
            Type::Func(f) => match self.btf.resolve_chained_type(&f).ok()? {
                Type::FuncProto(fp) => Some(fp.parameters.len()),
                _ => None,
            },
            _ => None,
        })
    }

    /// Number of arguments of a tracepoint's BTF prototype (`btf_trace_NAME`), not counting
    /// the leading context pointer.
    pub fn tracepoint_arity(&self, tracepoint: &str) -> Option<usize> {
        let types = self
            .btf
            .resolve_types_by_name(&format!("btf_trace_{tracepoint}"))
            .ok()?;
        let td = types.into_iter().next()?;
        let Type::Ptr(p) = self.strip(td) else {
            return None;
        };
        match self.btf.resolve_chained_type(&p).ok()? {
            Type::FuncProto(fp) => Some(fp.parameters.len().saturating_sub(1)),
            _ => None,
        }
    }
}

/// A copy of `path` in an anonymous memory file (which can be mapped where sysfs cannot).
fn memfd_copy(path: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = unsafe { libc::memfd_create(c"sockpath-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just created and owned by nothing else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::copy(&mut std::fs::File::open(path)?, &mut file)?;
    file.flush()?;
    Ok(OwnedFd::from(file))
}

fn strip_prefix(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests;
