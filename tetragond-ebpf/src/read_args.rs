//! Reading typed hook arguments: the integer from the program's context,
//! and for pointer kinds the structure behind it (a path, a socket, a
//! credential) into the argument's data slot of the per-CPU event buffer.
//! Struct member offsets come from the running kernel's BTF
//! (`STRUCT_OFFSETS`), set by user space at load time.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{self as gen, bpf_get_current_task},
};
use tetragond_ebpf::{
    arg_kind, ns_kind, CredInfo, IovIterOffsets, SkbInfo, SockInfo, StructOffsets, UserNsInfo,
    FILE_TYPE_BITS, FILE_TYPE_SHIFT, IOVECS_READ, MAX_PATH_COMPONENTS, NO_HOP, PATH_CUT,
    PATH_WALK_LEN, RECORD_LEN, STR_LEN,
};

use crate::scratch::scratch;
use crate::{loop_state, unrolled, STRUCT_OFFSETS, WALK_BUF};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[inline(always)]
unsafe fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Reads what a pointer-kind argument points at into `slot` (`STR_LEN`
/// bytes; a long path's end goes to `tail`); returns the argument's value:
/// the length of a string or path (descriptors included, see `walk_path`),
/// the family of a socket, the uid of a credential.
#[inline(never)]
pub fn read_data(kind: u8, raw: u64, size: u64, slot: *mut u8, tail: *mut u8) -> u64 {
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return 0;
    };
    // Empty unless something below fills it: an unreadable argument must
    // not match with another hook's leftovers.
    unsafe { *slot = 0 };
    match kind {
        arg_kind::STRING => return read_string(raw, slot),
        arg_kind::CHAR_BUF => return read_buf(raw, size, slot),
        arg_kind::CHAR_IOVEC => return read_iovec(raw, size, slot),
        arg_kind::FILENAME => {
            let name = unsafe { read::<u64>(raw, 0) }.unwrap_or(0);
            return read_string(name, slot);
        }
        _ if o.valid == 0 => return raw,
        arg_kind::SOCKADDR => return read_sockaddr(raw, slot.cast()),
        arg_kind::SOCK => return read_sock(o, raw, slot.cast()),
        arg_kind::SOCKET => {
            let sk = unsafe { read::<u64>(raw, o.socket_sk) }.unwrap_or(0);
            return read_sock(o, sk, slot.cast());
        }
        arg_kind::CRED => return read_cred(o, raw, slot.cast()),
        arg_kind::IOV_ITER => return read_iov_iter(&o.iov_iter, raw, slot),
        arg_kind::SKB => return read_skb(o, raw, slot.cast()),
        arg_kind::USER_NS => return read_user_ns(o, raw, slot.cast()),
        _ => {}
    }
    if let Some(record) = arg_kind::record(kind) {
        read_record(o, record, raw, slot);
        return 0;
    }
    // The path kinds: find the (dentry, vfsmount) pair, then one walk, so
    // the verifier checks the walk once.
    let (dentry, mnt) = match kind {
        arg_kind::DENTRY => (raw, 0),
        arg_kind::PATH => path_pair(o, raw),
        arg_kind::FILE => file_pair(o, raw),
        arg_kind::BINPRM => file_pair(o, unsafe { read::<u64>(raw, o.binprm_file) }.unwrap_or(0)),
        arg_kind::FD => file_pair(o, fd_file(o, raw)),
        _ => return raw,
    };
    if dentry == 0 {
        return 0;
    }
    walk_path(dentry, mnt, slot, tail) | file_type(o, dentry)
}

/// The file type bits of a path's value (see `FILE_TYPE_SHIFT`): 0 for a
/// negative dentry.
#[inline(always)]
fn file_type(o: &StructOffsets, dentry: u64) -> u64 {
    let inode = unsafe { read::<u64>(dentry, o.dentry_d_inode) }.unwrap_or(0);
    let mode = unsafe { read::<u16>(inode, o.inode_i_mode) }.unwrap_or(0);
    (u64::from(mode >> 12) << FILE_TYPE_SHIFT) & FILE_TYPE_BITS
}

#[inline(always)]
fn read_string(ptr: u64, slot: *mut u8) -> u64 {
    if ptr == 0 {
        return 0;
    }
    // The legacy helper reads user and kernel strings alike on x86-64:
    // hooks get both kinds of pointers.
    let n = unsafe { gen::bpf_probe_read_str(slot.cast(), STR_LEN as u32, ptr as *const c_void) };
    if n > 0 {
        (n - 1) as u64
    } else {
        0
    }
}

/// The first `size` bytes (at most `STR_LEN - 1`) of a buffer, NUL
/// terminated so string operators can match them; returns the count.
#[inline(always)]
fn read_buf(ptr: u64, size: u64, slot: *mut u8) -> u64 {
    if ptr == 0 {
        return 0;
    }
    let n = size.min(STR_LEN as u64 - 1) & (STR_LEN as u64 - 1);
    // The legacy helper, like for strings: user and kernel memory alike.
    if unsafe { gen::bpf_probe_read(slot.cast(), n as u32, ptr as *const c_void) } != 0 {
        return 0;
    }
    unsafe { *slot.add(n as usize) = 0 };
    n
}

/// The buffer (pointer, size) of a `CHAR_BUF` of `size` bytes at `raw`,
/// or of an `IOV_ITER` at `raw`; (0, 0) for other kinds.
#[inline(always)]
pub fn buffer_of(kind: u8, raw: u64, size: u64) -> (u64, u64) {
    match (kind, STRUCT_OFFSETS.get(0)) {
        (arg_kind::CHAR_BUF, _) => (raw, size),
        (arg_kind::IOV_ITER, Some(o)) if o.valid != 0 => iov_iter_buffer(&o.iov_iter, raw),
        _ => (0, 0),
    }
}

/// The first bytes of the data of iov_iter `iter` (see `iov_iter_buffer`),
/// as `read_buf`.
#[inline(always)]
fn read_iov_iter(v: &IovIterOffsets, iter: u64, slot: *mut u8) -> u64 {
    let (ptr, len) = iov_iter_buffer(v, iter);
    read_buf(ptr, len, slot)
}

/// The data of iov_iter `iter`: its user buffer, or its first iovec or
/// kvec segment (both `{base, len}`), at most `count` bytes; (0, 0) for
/// the other kinds.
#[inline(always)]
fn iov_iter_buffer(v: &IovIterOffsets, iter: u64) -> (u64, u64) {
    if v.valid == 0 {
        return (0, 0);
    }
    let mut kind: u32 = 0;
    let kind_ptr = (&mut kind as *mut u32).cast();
    if v.type_size == 1 {
        copy(kind_ptr, 1, iter, v.type_offset);
    } else {
        copy(kind_ptr, 4, iter, v.type_offset);
    }
    let kind = kind & v.type_mask;
    let mut count: u64 = 0;
    copy((&mut count as *mut u64).cast(), 8, iter, v.count);
    let mut data: u64 = 0;
    copy((&mut data as *mut u64).cast(), 8, iter, v.data);
    if kind == v.ubuf {
        return (data, count);
    }
    if kind != v.iovec && kind != v.kvec {
        return (0, 0);
    }
    let mut segment = [0u64; 2];
    copy(segment.as_mut_ptr().cast(), 16, data, 0);
    (segment[0], segment[1].min(count))
}

// `read_iovec`'s unrolled list is written for this count.
const _: () = assert!(IOVECS_READ == 8);

/// The buffers of the `count` iovecs at `iov`, one after the other, into
/// `slot` up to `STR_LEN - 1` bytes (at most `IOVECS_READ` buffers), NUL
/// terminated; returns the count. An unreadable iovec ends the read.
#[inline(always)]
fn read_iovec(iov: u64, count: u64, slot: *mut u8) -> u64 {
    if iov == 0 {
        return 0;
    }
    let room = STR_LEN as u64 - 1;
    let mut len: u64 = 0;
    unrolled!(
        [0, 1, 2, 3, 4, 5, 6, 7],
        |i| if (i as u64) < count && len < room {
            let mut vec = [0u64; 2];
            let at = (iov + 16 * i as u64) as *const c_void;
            if unsafe { gen::bpf_probe_read(vec.as_mut_ptr().cast(), 16, at) } != 0 {
                return finish(slot, len);
            }
            let [base, vec_len] = vec;
            // Masked for the verifier: `len + n` stays below `2 * STR_LEN`,
            // inside the event buffer, and is below `STR_LEN` in fact. The
            // mask is hidden from the optimiser, which drops it as redundant
            // after the `min`: 5.10's verifier does not carry a bound learnt
            // on one register to its copies.
            let n = core::hint::black_box(vec_len.min(room - len)) & (STR_LEN as u64 - 1);
            let to = unsafe { slot.add((len & (STR_LEN as u64 - 1)) as usize) };
            if n != 0
                && unsafe { gen::bpf_probe_read(to.cast(), n as u32, base as *const c_void) } != 0
            {
                return finish(slot, len);
            }
            // `len + n` never passes `room`; the mask (a no-op) keeps the
            // verifier's bounds of `len` within the slot, so that 5.10's,
            // which follows a compare's impossible branch when the
            // constant is on its left, never meets contradictory ones.
            len = (len + n) & (STR_LEN as u64 - 1);
        }
    );
    finish(slot, len)
}

/// NUL terminates `len` (at most `STR_LEN - 1`) bytes of `slot`. A mask,
/// not a `min`: 5.10's verifier follows the `min`'s branch that cannot be
/// taken, and an offset with such bounds makes the pointer a scalar.
#[inline(always)]
fn finish(slot: *mut u8, len: u64) -> u64 {
    let len = len & (STR_LEN as u64 - 1);
    unsafe { *slot.add(len as usize) = 0 };
    len
}

/// The current task's working directory into `slot` (`STR_LEN` bytes);
/// returns its length, 0 when it could not be read.
#[inline(never)]
pub fn read_cwd(slot: *mut u8) -> u64 {
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return 0;
    };
    if o.valid == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() };
    let fs = unsafe { read::<u64>(task, o.task_fs) }.unwrap_or(0);
    if fs == 0 {
        return 0;
    }
    let (dentry, mnt) = path_pair(o, fs + o.fs_pwd as u64);
    if dentry == 0 {
        return 0;
    }
    in_slot(walk_path(dentry, mnt, slot, core::ptr::null_mut()))
}

/// The bytes of a walked path that its slot holds.
#[inline(always)]
fn in_slot(walked: u64) -> u64 {
    (walked & (PATH_CUT - 1)).min(STR_LEN as u64 - 1)
}

/// The executable (`mm->exe_file`) of `task` into `slot` (`STR_LEN`
/// bytes, NUL padded); returns its length, 0 when it could not be read
/// (a kernel thread, a task past its `exit_mm`).
#[inline(never)]
pub fn read_exe(task: u64, slot: *mut u8) -> u64 {
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return 0;
    };
    let mm = unsafe { read::<u64>(task, o.task_mm) }.unwrap_or(0);
    let file = unsafe { read::<u64>(mm, o.mm_exe_file) }.unwrap_or(0);
    let (dentry, mnt) = file_pair(o, file);
    if dentry == 0 {
        return 0;
    }
    in_slot(walk_path(dentry, mnt, slot, core::ptr::null_mut()))
}

/// The current task's parent's process id.
#[inline(always)]
pub fn parent_tgid() -> u32 {
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return 0;
    };
    let task = unsafe { bpf_get_current_task() };
    let parent = unsafe { read::<u64>(task, o.task_real_parent) }.unwrap_or(0);
    unsafe { read::<u32>(parent, o.task_tgid) }.unwrap_or(0)
}

/// (dentry, vfsmount) of a `struct file`.
#[inline(always)]
fn file_pair(o: &StructOffsets, file: u64) -> (u64, u64) {
    if file == 0 {
        return (0, 0);
    }
    path_pair(o, file + o.file_f_path as u64)
}

/// (dentry, vfsmount) of a `struct path`.
#[inline(always)]
fn path_pair(o: &StructOffsets, path: u64) -> (u64, u64) {
    let mnt = unsafe { read::<u64>(path, o.path_mnt) }.unwrap_or(0);
    let dentry = unsafe { read::<u64>(path, o.path_dentry) }.unwrap_or(0);
    (dentry, mnt)
}

/// The current task's `files->fdt->fd[fd]`, or 0.
#[inline(always)]
fn fd_file(o: &StructOffsets, fd: u64) -> u64 {
    let task = unsafe { bpf_get_current_task() };
    let files = unsafe { read::<u64>(task, o.task_files) }.unwrap_or(0);
    let fdt = unsafe { read::<u64>(files, o.files_fdt) }.unwrap_or(0);
    let max = unsafe { read::<u32>(fdt, o.fdtable_max_fds) }.unwrap_or(0);
    if fd >= max as u64 {
        return 0;
    }
    let array = unsafe { read::<u64>(fdt, o.fdtable_fd) }.unwrap_or(0);
    unsafe { read::<u64>(array, (fd * 8) as u32) }.unwrap_or(0)
}

// A path walk's state (`LoopState::path_*`): the dentry reached, the
// `vfsmount` it is on (0 walks within one file system), where in
// `WALK_BUF[..PATH_WALK_LEN]` the components written right to left begin,
// and whether the walk reached the root.

/// Builds the absolute path of `dentry` on `mnt` the way the kernel's
/// `d_path` does, crossing mount points, at most `MAX_PATH_COMPONENTS`
/// deep and `PATH_WALK_LEN` long; copies its first `STR_LEN - 1` bytes to
/// `slot` (NUL terminated, zeros beyond: an executable's path is a hash
/// key) and, when it is longer and `tail` is not null, its last ones to
/// `tail`. Returns its length, with `PATH_CUT` when the walk stopped
/// before the root.
#[inline(always)]
fn walk_path(dentry: u64, mnt: u64, slot: *mut u8, tail: *mut u8) -> u64 {
    let Some(buf) = scratch(&WALK_BUF) else {
        return 0;
    };
    let buf = buf as *mut u8;
    let Some(state) = loop_state() else {
        return 0;
    };
    state.path_dentry = dentry;
    state.path_mnt = mnt;
    state.path_pos = PATH_WALK_LEN as u64;
    state.path_complete = 0;
    unsafe { *buf.add(PATH_WALK_LEN) = 0 };
    crate::repeat!(MAX_PATH_COMPONENTS, MAX_PATH_COMPONENTS, path_step());
    let Some(state) = loop_state() else {
        return 0;
    };
    let cut = if state.path_complete == 0 {
        PATH_CUT
    } else {
        0
    };
    let mut pos = state.path_pos;
    if pos >= PATH_WALK_LEN as u64 {
        pos = PATH_WALK_LEN as u64 - 1;
        unsafe { *buf.add(PATH_WALK_LEN - 1) = b'/' };
    }
    let start = (pos as usize) & (PATH_WALK_LEN - 1);
    let len = (PATH_WALK_LEN - start) as u64;
    // The NUL after the path comes along when it fits.
    let head = (core::hint::black_box(len.min(STR_LEN as u64 - 1)) & (STR_LEN as u64 - 1)) + 1;
    let copied = unsafe {
        gen::bpf_probe_read_kernel(slot.cast(), head as u32, buf.add(start) as *const c_void)
    };
    if copied != 0 {
        unsafe { *slot = 0 };
        return 0;
    }
    unsafe { *slot.add(STR_LEN - 1) = 0 };
    if len >= STR_LEN as u64 && !tail.is_null() {
        let src = unsafe { buf.add(PATH_WALK_LEN - (STR_LEN - 1)) };
        unsafe { gen::bpf_probe_read_kernel(tail.cast(), STR_LEN as u32, src as *const c_void) };
    }
    len | cut
}

/// Loop step: prepends one component, or crosses to the parent mount;
/// stops at the root (marking the walk complete), or when the path no
/// longer fits.
#[no_mangle]
#[inline(never)]
pub extern "C" fn path_step(index: u64) -> i64 {
    // Also keeps `index` used: LLVM passes nothing for an unused argument,
    // and the verifier refuses a global function's uninitialised register.
    if index >= u64::from(MAX_PATH_COMPONENTS) {
        return 1;
    }
    let (Some(o), Some(buf), Some(walk)) =
        (STRUCT_OFFSETS.get(0), scratch(&WALK_BUF), loop_state())
    else {
        return 1;
    };
    let buf = buf as *mut u8;
    let Some(parent) = (unsafe { read::<u64>(walk.path_dentry, o.dentry_d_parent) }) else {
        return 1;
    };
    let mnt_root = unsafe { read::<u64>(walk.path_mnt, o.vfsmount_root) }.unwrap_or(0);
    if walk.path_dentry == mnt_root || walk.path_dentry == parent {
        if walk.path_mnt == 0 || walk.path_dentry != mnt_root {
            walk.path_complete = 1;
            return 1;
        }
        let mount = walk.path_mnt - o.mount_mnt as u64;
        let up = unsafe { read::<u64>(mount, o.mount_parent) }.unwrap_or(0);
        if up == 0 || up == mount {
            walk.path_complete = 1;
            return 1;
        }
        walk.path_dentry = unsafe { read::<u64>(mount, o.mount_mountpoint) }.unwrap_or(0);
        walk.path_mnt = up + o.mount_mnt as u64;
        return (walk.path_dentry == 0) as i64;
    }
    let len = unsafe { read::<u32>(walk.path_dentry, o.dentry_name_len) }.unwrap_or(0) as u64;
    let name = unsafe { read::<u64>(walk.path_dentry, o.dentry_name) }.unwrap_or(0);
    let at = walk.path_pos.min(PATH_WALK_LEN as u64);
    if name == 0 || len >= STR_LEN as u64 || len + 1 > at {
        return 1;
    }
    let pos = at - len - 1;
    // Masked on a value the optimiser cannot see through: 6.1's verifier
    // does not carry the bound from the comparison above.
    let len = core::hint::black_box(len) & (STR_LEN as u64 - 1);
    unsafe {
        *buf.add(pos as usize & (PATH_WALK_LEN - 1)) = b'/';
        let dst = buf.add((pos as usize + 1) & (PATH_WALK_LEN - 1));
        if gen::bpf_probe_read_kernel(dst.cast(), len as u32, name as *const c_void) != 0 {
            return 1;
        }
    }
    walk.path_pos = pos;
    walk.path_dentry = parent;
    0
}

/// Copies `size` bytes of kernel memory at `src + offset` to `dst`; on
/// failure `dst` is zeroed by the helper.
#[inline(always)]
fn copy(dst: *mut u8, size: u32, src: u64, offset: u32) {
    if src == 0 {
        return;
    }
    unsafe { gen::bpf_probe_read_kernel(dst.cast(), size, (src + offset as u64) as *const c_void) };
}

/// `::ffff:a.b.c.d`, written in place.
#[inline(always)]
fn v4_mapped(dst: *mut [u8; 16], src: u64, offset: u32) {
    unsafe {
        (*dst) = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
        copy((dst as *mut u8).add(12), 4, src, offset);
    }
}

/// A `sockaddr_in`/`sockaddr_in6` (kernel memory): the address it names
/// fills both ends, so SAddr/DAddr and SPort/DPort all match against it.
#[inline(always)]
fn read_sockaddr(ptr: u64, out: *mut SockInfo) -> u64 {
    let family = unsafe { read::<u16>(ptr, 0) }.unwrap_or(0);
    let port = u16::from_be(unsafe { read::<u16>(ptr, 2) }.unwrap_or(0));
    unsafe {
        (*out).family = family;
        (*out).protocol = 0;
        (*out).sport = port;
        (*out).dport = port;
        (*out).daddr = [0; 16];
        if family == AF_INET {
            v4_mapped(&mut (*out).daddr, ptr, 4);
        } else if family == AF_INET6 {
            copy((*out).daddr.as_mut_ptr(), 16, ptr, 8);
        }
        (*out).saddr = (*out).daddr;
    }
    family as u64
}

#[inline(always)]
fn read_sock(o: &StructOffsets, sk: u64, out: *mut SockInfo) -> u64 {
    let family = unsafe { read::<u16>(sk, o.sk_family) }.unwrap_or(0);
    unsafe {
        (*out).family = family;
        (*out).protocol = read::<u16>(sk, o.sk_protocol).unwrap_or(0);
        (*out).state = read::<u8>(sk, o.sk_state).unwrap_or(0);
        (*out).sock_type = read::<u16>(sk, o.sk_type).unwrap_or(0);
        (*out).sport = read::<u16>(sk, o.sk_num).unwrap_or(0);
        (*out).dport = u16::from_be(read::<u16>(sk, o.sk_dport).unwrap_or(0));
        if family == AF_INET6 {
            copy((*out).saddr.as_mut_ptr(), 16, sk, o.sk_v6_rcv_saddr);
            copy((*out).daddr.as_mut_ptr(), 16, sk, o.sk_v6_daddr);
        } else {
            v4_mapped(&mut (*out).saddr, sk, o.sk_rcv_saddr);
            v4_mapped(&mut (*out).daddr, sk, o.sk_daddr);
        }
    }
    family as u64
}

/// A packet: the buffer's hash, length, priority and mark, then from its
/// IPv4 or IPv6 header the addresses and protocol, and for TCP and UDP the
/// ports; returns the family (0 for another network protocol).
#[inline(always)]
fn read_skb(o: &StructOffsets, skb: u64, out: *mut SkbInfo) -> u64 {
    const UNSET: u16 = u16::MAX;
    let out = unsafe { &mut *out };
    *out = SkbInfo::default();
    if skb == 0 {
        return 0;
    }
    unsafe {
        out.hash = read::<u32>(skb, o.skb_hash).unwrap_or(0);
        out.len = read::<u32>(skb, o.skb_len).unwrap_or(0);
        out.priority = read::<u32>(skb, o.skb_priority).unwrap_or(0);
        out.mark = read::<u32>(skb, o.skb_mark).unwrap_or(0);
    }
    let head = unsafe { read::<u64>(skb, o.skb_head) }.unwrap_or(0);
    let network = unsafe { read::<u16>(skb, o.skb_network_header) }.unwrap_or(UNSET);
    let transport = unsafe { read::<u16>(skb, o.skb_transport_header) }.unwrap_or(UNSET);
    if head == 0 || network == UNSET {
        return 0;
    }
    let ip = head + u64::from(network);
    let first = unsafe { read::<u8>(ip, 0) }.unwrap_or(0);
    let sock = &mut out.sock;
    let (family, protocol, after_ip) = match first >> 4 {
        4 => {
            v4_mapped(&mut sock.saddr, ip, 12);
            v4_mapped(&mut sock.daddr, ip, 16);
            let header = u64::from(first & 0xf) * 4;
            (AF_INET, unsafe { read::<u8>(ip, 9) }, ip + header)
        }
        6 => {
            copy(sock.saddr.as_mut_ptr(), 16, ip, 8);
            copy(sock.daddr.as_mut_ptr(), 16, ip, 24);
            (AF_INET6, unsafe { read::<u8>(ip, 6) }, ip + 40)
        }
        _ => return 0,
    };
    let protocol = protocol.unwrap_or(0);
    sock.family = family;
    sock.protocol = u16::from(protocol);
    // The transport header where the stack has set it, else right after
    // the IP header (an IPv6 extension header then reads as no ports).
    let l4 = if transport != UNSET && transport > network {
        head + u64::from(transport)
    } else {
        after_ip
    };
    if protocol == 6 || protocol == 17 {
        sock.sport = u16::from_be(unsafe { read::<u16>(l4, 0) }.unwrap_or(0));
        sock.dport = u16::from_be(unsafe { read::<u16>(l4, 2) }.unwrap_or(0));
    }
    family as u64
}

/// A user namespace's level, owner, group and inode number; returns the
/// inode number.
#[inline(always)]
fn read_user_ns(o: &StructOffsets, ns: u64, out: *mut UserNsInfo) -> u64 {
    let inum = o.ns[ns_kind::USER as usize].inum;
    unsafe {
        let out = &mut *out;
        copy((&mut out.level as *mut i32).cast(), 4, ns, o.user_ns_level);
        copy((&mut out.uid as *mut u32).cast(), 4, ns, o.user_ns_owner);
        copy((&mut out.gid as *mut u32).cast(), 4, ns, o.user_ns_group);
        copy((&mut out.inum as *mut u32).cast(), 4, ns, inum);
        u64::from(out.inum)
    }
}

/// Copies the members of object `base` that record `record` lists into
/// `slot` (`RECORD_LEN` bytes, zeros where a member is missing or
/// unreadable).
#[inline(always)]
fn read_record(o: &StructOffsets, record: usize, base: u64, slot: *mut u8) {
    let words = slot.cast::<u64>();
    for w in 0..RECORD_LEN / 8 {
        unsafe { *words.add(w) = 0 };
    }
    // An opaque copy, bounds-checked where it is used: LLVM would
    // otherwise index with the caller's form of it (`kind - 16`), which
    // the verifier cannot bound.
    let record = unsafe { core::ptr::read_volatile(&record) };
    let (Some(pieces), true) = (o.records.get(record), base != 0) else {
        return;
    };
    for piece in pieces.iter() {
        if piece.present == 0 {
            continue;
        }
        let from = if piece.hop == NO_HOP {
            base
        } else {
            unsafe { read::<u64>(base, u32::from(piece.hop)) }.unwrap_or(0)
        };
        if from == 0 {
            continue;
        }
        // Masked so the verifier sees the copy inside the slot (user
        // space keeps `dst + size` within RECORD_LEN).
        let dst = unsafe { slot.add(usize::from(piece.dst & 0x7f)) };
        let n = u32::from(piece.size & 0x7f);
        let at = from + u64::from(piece.offset);
        unsafe {
            if piece.string != 0 {
                let s = read::<u64>(at, 0).unwrap_or(0);
                if s != 0 {
                    // The legacy helper: the string may be in the
                    // caller's memory (a perf event's kprobe function).
                    gen::bpf_probe_read_str(dst.cast(), n, s as *const c_void);
                }
            } else {
                gen::bpf_probe_read_kernel(dst.cast(), n, at as *const c_void);
            }
        }
    }
}

pub fn read_cred(o: &StructOffsets, cred: u64, out: *mut CredInfo) -> u64 {
    unsafe {
        let out = &mut *out;
        copy((&mut out.uid as *mut u32).cast(), 4, cred, o.cred_uid);
        copy((&mut out.gid as *mut u32).cast(), 4, cred, o.cred_gid);
        copy((&mut out.euid as *mut u32).cast(), 4, cred, o.cred_euid);
        copy((&mut out.egid as *mut u32).cast(), 4, cred, o.cred_egid);
        copy((&mut out.suid as *mut u32).cast(), 4, cred, o.cred_suid);
        copy((&mut out.sgid as *mut u32).cast(), 4, cred, o.cred_sgid);
        copy((&mut out.fsuid as *mut u32).cast(), 4, cred, o.cred_fsuid);
        copy((&mut out.fsgid as *mut u32).cast(), 4, cred, o.cred_fsgid);
        copy(
            (&mut out.securebits as *mut u32).cast(),
            4,
            cred,
            o.cred_securebits,
        );
        let mut user_ns = 0u64;
        copy((&mut user_ns as *mut u64).cast(), 8, cred, o.cred_user_ns);
        read_user_ns(o, user_ns, &mut out.user_ns);
        copy(
            (&mut out.cap_effective as *mut u64).cast(),
            8,
            cred,
            o.cred_cap_effective,
        );
        copy(
            (&mut out.cap_permitted as *mut u64).cast(),
            8,
            cred,
            o.cred_cap_permitted,
        );
        copy(
            (&mut out.cap_inheritable as *mut u64).cast(),
            8,
            cred,
            o.cred_cap_inheritable,
        );
        out.uid as u64
    }
}
