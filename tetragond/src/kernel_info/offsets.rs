//! Kernel struct member offsets the argument readers need, from the
//! running kernel's BTF: nothing is baked in for one kernel.

use tetragond_ebpf::{ns_kind, IovIterOffsets, NsOffsets, StructOffsets, NO_ITER};

use super::btf::{BtfError, KernelBtf};

pub fn struct_offsets(btf: &KernelBtf) -> Result<StructOffsets, BtfError> {
    let at = |s: &str, path: &[&str]| btf.member_offset(s, path).map(|m| m.offset);
    let sk = |member: &str| at("sock", &["__sk_common", member]);
    Ok(StructOffsets {
        valid: 1,
        file_f_path: at("file", &["f_path"])?,
        path_mnt: at("path", &["mnt"])?,
        path_dentry: at("path", &["dentry"])?,
        dentry_d_parent: at("dentry", &["d_parent"])?,
        dentry_name: at("dentry", &["d_name", "name"])?,
        dentry_name_len: at("dentry", &["d_name", "len"])?,
        dentry_d_inode: at("dentry", &["d_inode"])?,
        inode_i_mode: at("inode", &["i_mode"])?,
        inode_i_ino: at("inode", &["i_ino"])?,
        inode_i_nlink: at("inode", &["__i_nlink"])?,
        inode_i_uid: at("inode", &["i_uid"])?,
        inode_i_gid: at("inode", &["i_gid"])?,
        mount_mnt: at("mount", &["mnt"])?,
        mount_parent: at("mount", &["mnt_parent"])?,
        mount_mountpoint: at("mount", &["mnt_mountpoint"])?,
        vfsmount_root: at("vfsmount", &["mnt_root"])?,
        binprm_file: at("linux_binprm", &["file"])?,
        task_files: at("task_struct", &["files"])?,
        files_fdt: at("files_struct", &["fdt"])?,
        fdtable_fd: at("fdtable", &["fd"])?,
        fdtable_max_fds: at("fdtable", &["max_fds"])?,
        sk_family: sk("skc_family")?,
        sk_protocol: at("sock", &["sk_protocol"])?,
        sk_state: sk("skc_state")?,
        sk_type: at("sock", &["sk_type"])?,
        sk_num: sk("skc_num")?,
        sk_dport: sk("skc_dport")?,
        sk_rcv_saddr: sk("skc_rcv_saddr")?,
        sk_daddr: sk("skc_daddr")?,
        sk_v6_rcv_saddr: sk("skc_v6_rcv_saddr")?,
        sk_v6_daddr: sk("skc_v6_daddr")?,
        socket_sk: at("socket", &["sk"])?,
        cred_uid: at("cred", &["uid"])?,
        cred_gid: at("cred", &["gid"])?,
        cred_euid: at("cred", &["euid"])?,
        cred_egid: at("cred", &["egid"])?,
        cred_suid: at("cred", &["suid"])?,
        cred_sgid: at("cred", &["sgid"])?,
        cred_fsuid: at("cred", &["fsuid"])?,
        cred_fsgid: at("cred", &["fsgid"])?,
        cred_securebits: at("cred", &["securebits"])?,
        cred_cap_inheritable: at("cred", &["cap_inheritable"])?,
        cred_cap_permitted: at("cred", &["cap_permitted"])?,
        cred_cap_effective: at("cred", &["cap_effective"])?,
        cred_cap_ambient: at("cred", &["cap_ambient"])?,
        cred_user_ns: at("cred", &["user_ns"])?,
        user_ns_level: at("user_namespace", &["level"])?,
        user_ns_owner: at("user_namespace", &["owner"])?,
        user_ns_group: at("user_namespace", &["group"])?,
        task_real_parent: at("task_struct", &["real_parent"])?,
        task_tgid: at("task_struct", &["tgid"])?,
        task_cred: at("task_struct", &["cred"])?,
        task_nsproxy: at("task_struct", &["nsproxy"])?,
        task_mm: at("task_struct", &["mm"])?,
        mm_exe_file: at("mm_struct", &["exe_file"])?,
        task_fs: at("task_struct", &["fs"])?,
        fs_pwd: at("fs_struct", &["pwd"])?,
        task_group_leader: at("task_struct", &["group_leader"])?,
        task_thread_pid: at("task_struct", &["thread_pid"])?,
        pid_level: at("pid", &["level"])?,
        pid_numbers: at("pid", &["numbers"])?,
        upid_size: btf.member_offset("upid", &["ns"])?.offset + 8,
        upid_nr: at("upid", &["nr"])?,
        upid_ns: at("upid", &["ns"])?,
        ns: namespaces(btf)?,
        // x86-64 embeds `thread_info` in `task_struct`
        // (CONFIG_THREAD_INFO_IN_TASK); `status` holds TS_COMPAT. Its
        // offset moved (5.11 added `syscall_work` before it).
        task_ti_status: at("task_struct", &["thread_info", "status"])?,
        skb_hash: at("sk_buff", &["hash"])?,
        skb_len: at("sk_buff", &["len"])?,
        skb_priority: at("sk_buff", &["priority"])?,
        skb_mark: at("sk_buff", &["mark"])?,
        skb_head: at("sk_buff", &["head"])?,
        skb_network_header: at("sk_buff", &["network_header"])?,
        skb_transport_header: at("sk_buff", &["transport_header"])?,
        records: super::records::record_layouts(btf),
        iov_iter: iov_iter(btf),
    })
}

/// `struct iov_iter` as this kernel has it; not `valid` when it is laid
/// out otherwise (then `iov_iter` args are refused).
pub fn iov_iter(btf: &KernelBtf) -> IovIterOffsets {
    let at = |path: &[&str]| btf.member_offset("iov_iter", path).ok().map(|m| m.offset);
    let kind = |name: &str| {
        btf.enumerator("iter_type", name)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(NO_ITER)
    };
    // From 5.14 a byte of `enum iter_type`; before, `type`, which also
    // holds the direction (READ 0, WRITE 1) in bit 0.
    let (type_offset, type_size, type_mask) = match (at(&["iter_type"]), at(&["type"])) {
        (Some(offset), _) => (offset, 1, 0xff),
        (None, Some(offset)) => (offset, 4, !1),
        (None, None) => return IovIterOffsets::default(),
    };
    let vectors = at(&["__iov"]).or_else(|| at(&["iov"]));
    let (Some(count), Some(data), Some(iov)) = (at(&["count"]), at(&["kvec"]), vectors) else {
        return IovIterOffsets::default();
    };
    let ubuf = kind("ITER_UBUF");
    // One union holds them all; the buffer, where it exists, too.
    let same_union = iov == data && (ubuf == NO_ITER || at(&["ubuf"]) == Some(data));
    let (iovec, kvec) = (kind("ITER_IOVEC"), kind("ITER_KVEC"));
    IovIterOffsets {
        valid: u32::from(same_union && iovec != NO_ITER && kvec != NO_ITER),
        type_offset,
        type_size,
        type_mask,
        count,
        data,
        ubuf,
        iovec,
        kvec,
    }
}

/// Per `ns_kind`: the namespace pointer's holder member and its struct.
const NAMESPACES: [(&str, &str, &str); ns_kind::KINDS] = [
    ("nsproxy", "uts_ns", "uts_namespace"),
    ("nsproxy", "ipc_ns", "ipc_namespace"),
    ("nsproxy", "mnt_ns", "mnt_namespace"),
    ("nsproxy", "pid_ns_for_children", "pid_namespace"),
    ("nsproxy", "net_ns", "net"),
    ("nsproxy", "time_ns", "time_namespace"),
    ("nsproxy", "time_ns_for_children", "time_namespace"),
    ("nsproxy", "cgroup_ns", "cgroup_namespace"),
    ("cred", "user_ns", "user_namespace"),
];

fn namespaces(btf: &KernelBtf) -> Result<[NsOffsets; ns_kind::KINDS], BtfError> {
    let mut out = [NsOffsets::default(); ns_kind::KINDS];
    for (slot, (holder, member, ns_struct)) in out.iter_mut().zip(NAMESPACES) {
        *slot = NsOffsets {
            member: btf.member_offset(holder, &[member])?.offset,
            inum: btf.member_offset(ns_struct, &["ns", "inum"])?.offset,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member exists in the kernel this runs on (the BTF of the
    /// development and CI machines), and the offsets are plausible.
    #[test]
    fn offsets_resolve_on_the_running_kernel() {
        let Ok(btf) = KernelBtf::from_sys_fs() else {
            panic!("this test needs /sys/kernel/btf/vmlinux");
        };
        let o = struct_offsets(&btf).expect("all members resolve");
        assert_eq!(o.path_dentry, o.path_mnt + 8);
        assert_eq!(o.dentry_name, o.dentry_name_len + 4);
        assert!(o.sk_dport < o.sk_num);
        // thread_info comes first in task_struct: `flags` (and, from 5.11,
        // `syscall_work`) precede `status`.
        assert!(matches!(o.task_ti_status, 8 | 16), "{}", o.task_ti_status);
        // 6.5 on: ITER_UBUF first, then ITER_IOVEC; a byte of kind.
        let v = o.iov_iter;
        assert_eq!(
            (v.valid, v.type_size, v.ubuf, v.iovec),
            (1, 1, 0, 1),
            "{v:?}"
        );
        assert_eq!(
            btf.enumerator("iter_type", "ITER_KVEC"),
            Some(i64::from(v.kvec))
        );
    }
}
