//! Tetragon's `binary_properties` of an exec: a set-user-ID or
//! set-group-ID execution (the ids it gave), whether it raised the
//! process's privileges (to root, or by file capabilities), and an
//! executable without a name on disk (memfd, O_TMPFILE, deleted).
//!
//! Tetragon decides in `security_bprm_committing_creds` from the
//! `linux_binprm`: a privileged execution is one whose `per_clear` is set
//! (the kernel honoured the set-id bits or granted file capabilities). The
//! kernel side here reads at `sched_process_exec` instead (a kprobe is not
//! on every kernel), so the same rules are applied to what is there then:
//! a set-id bit is honoured when the new effective id is the file's owner
//! (group), and the capabilities gained are those of the new permitted set
//! beyond the process's last snapshot (see `ExecBinary::old_permitted`).

use tetragond_ebpf::{ExecBinary, UNKNOWN_CAPS};

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;

/// Tetragon's `ProcessPrivilegesChanged` names.
pub const RAISED_FILE_CAP: &str = "PRIVILEGES_RAISED_EXEC_FILE_CAP";
pub const RAISED_SETUID: &str = "PRIVILEGES_RAISED_EXEC_FILE_SETUID";
pub const RAISED_SETGID: &str = "PRIVILEGES_RAISED_EXEC_FILE_SETGID";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryProperties {
    /// The effective uid a set-user-ID execution gave.
    pub setuid: Option<u32>,
    /// The effective gid a set-group-ID execution gave.
    pub setgid: Option<u32>,
    /// Why the execution raised privileges, in Tetragon's order.
    pub privileges_changed: Vec<&'static str>,
    /// The executable's inode number and link count, when it has no name
    /// on disk (no links).
    pub unlinked: Option<(u64, u32)>,
}

impl BinaryProperties {
    /// Those of an exec by a process whose real ids are `uid` and `gid`
    /// (an exec does not change them); None when there is nothing to say,
    /// as Tetragon leaves the field out.
    pub fn of_exec(b: &ExecBinary, uid: u32, gid: u32) -> Option<Self> {
        if b.valid == 0 {
            return None;
        }
        let setuid_bit = b.mode & S_ISUID != 0 && b.euid == b.uid;
        let setgid_bit = b.mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP && b.egid == b.gid;
        let gained = b.old_permitted != UNKNOWN_CAPS && b.permitted & !b.old_permitted != 0;
        let mut props = BinaryProperties::default();
        if setuid_bit && b.euid != uid {
            props.setuid = Some(b.euid);
        }
        if setgid_bit && b.egid != gid {
            props.setgid = Some(b.egid);
        }
        // Capabilities raised by the file itself: not by a set-id bit,
        // and not by ambient capabilities, which a file's cancel.
        if gained && b.ambient == 0 && b.euid == uid && !setuid_bit && !setgid_bit {
            props.privileges_changed.push(RAISED_FILE_CAP);
        }
        if props.setuid.is_some() && uid != 0 && b.euid == 0 {
            props.privileges_changed.push(RAISED_SETUID);
        }
        if props.setgid.is_some() && gid != 0 && b.egid == 0 {
            props.privileges_changed.push(RAISED_SETGID);
        }
        if b.nlink == 0 && b.ino != 0 {
            props.unlinked = Some((b.ino, b.nlink));
        }
        (props != BinaryProperties::default()).then_some(props)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable owned by root:root, mode `mode`, run by uid and gid
    /// 1000 with no capabilities.
    fn exec(mode: u32, euid: u32, egid: u32, permitted: u64) -> ExecBinary {
        ExecBinary {
            ino: 42,
            nlink: 1,
            mode: 0o100_000 | mode,
            uid: 0,
            gid: 0,
            euid,
            egid,
            permitted,
            ambient: 0,
            old_permitted: 0,
            valid: 1,
            _pad: 0,
        }
    }

    #[test]
    fn an_ordinary_exec_has_nothing_to_say() {
        assert_eq!(
            BinaryProperties::of_exec(&exec(0o755, 1000, 1000, 0), 1000, 1000),
            None
        );
        // A process already running with another effective uid keeps it
        // across an exec of a plain binary: no set-id execution.
        assert_eq!(
            BinaryProperties::of_exec(&exec(0o755, 0, 1000, 0), 1000, 1000),
            None
        );
        let unread = ExecBinary {
            valid: 0,
            ..exec(0o4755, 0, 1000, !0)
        };
        assert_eq!(BinaryProperties::of_exec(&unread, 1000, 1000), None);
    }

    #[test]
    fn a_setuid_root_binary_raises_privileges() {
        let p = BinaryProperties::of_exec(&exec(0o4755, 0, 1000, !0), 1000, 1000).unwrap();
        assert_eq!(p.setuid, Some(0));
        assert_eq!(p.setgid, None);
        assert_eq!(p.privileges_changed, [RAISED_SETUID]);
        // Root running it changes nothing.
        assert_eq!(
            BinaryProperties::of_exec(&exec(0o4755, 0, 0, !0), 0, 0),
            None
        );
    }

    #[test]
    fn a_setuid_binary_of_another_user_gives_its_uid_only() {
        let mut b = exec(0o4755, 65534, 1000, 0);
        b.uid = 65534;
        let p = BinaryProperties::of_exec(&b, 0, 0).unwrap();
        assert_eq!(p.setuid, Some(65534));
        assert!(p.privileges_changed.is_empty());
    }

    #[test]
    fn a_setgid_binary_needs_group_execute_too() {
        let mut b = exec(0o2755, 1000, 5, 0);
        b.gid = 5;
        let p = BinaryProperties::of_exec(&b, 1000, 1000).unwrap();
        assert_eq!((p.setuid, p.setgid), (None, Some(5)));
        assert!(p.privileges_changed.is_empty());
        // Without group execute the bit means mandatory locking.
        b.mode = 0o100_000 | 0o2745;
        assert_eq!(BinaryProperties::of_exec(&b, 1000, 1000), None);
        b.mode = 0o100_000 | 0o2755;
        b.gid = 0;
        b.egid = 0;
        let p = BinaryProperties::of_exec(&b, 1000, 1000).unwrap();
        assert_eq!(p.privileges_changed, [RAISED_SETGID]);
    }

    #[test]
    fn file_capabilities_are_capabilities_gained_without_a_set_id_bit() {
        let net_raw = 1 << 13;
        let p = BinaryProperties::of_exec(&exec(0o755, 1000, 1000, net_raw), 1000, 1000).unwrap();
        assert_eq!(p.privileges_changed, [RAISED_FILE_CAP]);
        assert_eq!((p.setuid, p.setgid), (None, None));
        // Held before: nothing gained.
        let mut b = exec(0o755, 1000, 1000, net_raw);
        b.old_permitted = net_raw;
        assert_eq!(BinaryProperties::of_exec(&b, 1000, 1000), None);
        // Unknown before (a process older than the daemon): not claimed.
        b.old_permitted = UNKNOWN_CAPS;
        assert_eq!(BinaryProperties::of_exec(&b, 1000, 1000), None);
        // Ambient capabilities cancel a file's.
        b.old_permitted = 0;
        b.ambient = net_raw;
        assert_eq!(BinaryProperties::of_exec(&b, 1000, 1000), None);
    }

    #[test]
    fn an_executable_without_links_is_reported_with_its_inode() {
        let mut b = exec(0o755, 1000, 1000, 0);
        b.nlink = 0;
        let p = BinaryProperties::of_exec(&b, 1000, 1000).unwrap();
        assert_eq!(p.unlinked, Some((42, 0)));
    }
}
