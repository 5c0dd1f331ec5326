//! The current task's file table: from an fd to the socket behind it.

use aya_ebpf::helpers::bpf_get_current_task;
use sockpath_ebpf::config::KernelOffsets;

use super::{read, read_ptr};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;

/// The `struct sock` behind `fd` in the current task, or 0 when `fd` is not a socket.
///
/// Walks task->files->fdt->fd[fd]->private_data (a struct socket, checked by the inode's
/// S_IFSOCK mode)->sk, as fget() would without taking references: the caller is the task itself,
/// in a system call on that fd, so the file cannot go away underneath.
#[inline(always)]
pub fn fd_to_sock(fd: i64, o: &KernelOffsets) -> u64 {
    if !(0..=i32::MAX as i64).contains(&fd) {
        return 0;
    }
    // SAFETY: helper without preconditions.
    let task = unsafe { bpf_get_current_task() };
    let Ok(files) = read_ptr(task, o.task_files) else {
        return 0;
    };
    let Ok(fdt) = read_ptr(files, o.files_fdt) else {
        return 0;
    };
    let Ok(max_fds) = read::<u32>(fdt, o.fdt_max_fds) else {
        return 0;
    };
    if fd as u64 >= max_fds as u64 {
        return 0;
    }
    let Ok(array) = read_ptr(fdt, o.fdt_fd) else {
        return 0;
    };
    let Ok(file) = read_ptr(array + (fd as u64) * 8, 0) else {
        return 0;
    };
    let Ok(inode) = read_ptr(file, o.file_inode) else {
        return 0;
    };
    match read::<u16>(inode, o.inode_mode) {
        Ok(mode) if mode & S_IFMT == S_IFSOCK => {}
        _ => return 0,
    }
    let Ok(socket) = read_ptr(file, o.file_private_data) else {
        return 0;
    };
    read_ptr(socket, o.socket_sk).unwrap_or(0)
}
