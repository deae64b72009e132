//! LSM hooks on which a policy may ask for `imaHash`: those whose first
//! argument names the file to hash (Tetragon's list), each served by a
//! sleepable companion program taking the hash with `bpf_ima_file_hash`
//! (Linux 5.18; the kernel allows sleepable programs on these hooks).

/// What a hook's first argument is, which says how its file is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImaSubject {
    /// A `struct file *`: hashed as is.
    File,
    /// A `struct linux_binprm *`: its `file`, the program being executed.
    Bprm,
}

impl ImaSubject {
    /// The companion program (in the BPF object) for hooks of this kind.
    pub fn program(self) -> &'static str {
        match self {
            ImaSubject::File => "ima_file",
            ImaSubject::Bprm => "ima_bprm",
        }
    }
}

// Not `file_open`, which Tetragon lists: at that hook the file cannot be
// read yet (the kernel lets it be read, FMODE_CAN_READ, after the hook),
// so IMA cannot hash a file opened for reading there (see `unreadable`).
const HOOKS: [(&str, ImaSubject); 10] = [
    ("bprm_check_security", ImaSubject::Bprm),
    ("bprm_committed_creds", ImaSubject::Bprm),
    ("bprm_committing_creds", ImaSubject::Bprm),
    ("bprm_creds_for_exec", ImaSubject::Bprm),
    ("bprm_creds_from_file", ImaSubject::Bprm),
    ("file_ioctl", ImaSubject::File),
    ("file_lock", ImaSubject::File),
    ("file_post_open", ImaSubject::File),
    ("file_receive", ImaSubject::File),
    ("mmap_file", ImaSubject::File),
];

/// The subject of LSM hook `hook` (with or without `bpf_lsm_`), if a
/// policy may ask for its IMA hash.
pub fn subject(hook: &str) -> Option<ImaSubject> {
    let hook = hook.strip_prefix("bpf_lsm_").unwrap_or(hook);
    HOOKS.iter().find(|(h, _)| *h == hook).map(|(_, s)| *s)
}

/// Why IMA cannot hash the file of `hook`, where a user would expect it
/// to.
pub fn unreadable(hook: &str) -> Option<&'static str> {
    let hook = hook.strip_prefix("bpf_lsm_").unwrap_or(hook);
    (hook == "file_open").then_some(
        "at file_open the file cannot be read yet (the kernel lets it be read after the hook), so IMA cannot hash it; file_post_open (Linux 6.9) can",
    )
}

/// The hooks, for messages.
pub fn hooks() -> String {
    HOOKS.map(|(h, _)| h).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_found_with_or_without_their_prefix() {
        assert_eq!(subject("mmap_file"), Some(ImaSubject::File));
        assert_eq!(subject("file_open"), None);
        assert!(unreadable("bpf_lsm_file_open").is_some());
        assert_eq!(
            subject("bpf_lsm_bprm_check_security"),
            Some(ImaSubject::Bprm)
        );
        assert_eq!(subject("path_mkdir"), None);
    }
}
