//! The policy folder as the daemon reads and writes it.
//!
//! Only root decides what is enforced. As sshd's StrictModes: the folder, a
//! policy file and a sidecar must be owned by root and not group- or
//! world-writable; a symlink is followed only when its target and every
//! directory on the way pass the same test. Nothing that could block is
//! read (FIFOs, devices), and nothing larger than the size cap.
//!
//! A scan that cannot read the folder is an error, never an empty folder:
//! the store then changes nothing.

use std::{
    collections::BTreeMap,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    io::{Read, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::policy;

/// Default cap on a policy or sidecar file (`max_policy_file_size`).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 20;

/// Whose files are trusted, and how large they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// Besides root, the uid that may own files: the daemon's own, which is
    /// root in the service (a unit test may run as another user).
    pub owner: u32,
    pub max_file_size: u64,
}

impl Trust {
    pub fn of_this_process(max_file_size: u64) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let owner = unsafe { libc::geteuid() };
        Trust {
            owner,
            max_file_size,
        }
    }
}

/// The folder cannot be read or is not trusted: nothing may change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read policy folder {}: {reason}", .dir.display())]
pub struct FolderError {
    pub dir: PathBuf,
    pub reason: String,
}

/// One file that is not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{}: not trusted: {reason}", .path.display())]
    Untrusted { path: PathBuf, reason: String },
    #[error("{}: {message}", .path.display())]
    Io { path: PathBuf, message: String },
}

/// What a scan found for one policy file: its text and its sidecar's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub yaml: Result<String, FileError>,
    /// `Ok(None)`: no sidecar.
    pub sidecar: Result<Option<String>, FileError>,
}

impl Snapshot {
    /// Changes when the file, its sidecar or the reason they failed change.
    /// A hash, so a large file's text is not kept between scans.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        match &self.yaml {
            Ok(text) => text.hash(&mut h),
            Err(e) => e.to_string().hash(&mut h),
        }
        match &self.sidecar {
            Ok(text) => text.hash(&mut h),
            Err(e) => e.to_string().hash(&mut h),
        }
        h.finish()
    }
}

/// Every policy file of `dir` with its sidecar, read under `trust`.
pub fn scan(dir: &Path, trust: &Trust) -> Result<BTreeMap<PathBuf, Snapshot>, FolderError> {
    let folder_error = |reason: String| FolderError {
        dir: dir.to_path_buf(),
        reason,
    };
    let md = fs::metadata(dir).map_err(|e| folder_error(e.to_string()))?;
    if !md.is_dir() {
        return Err(folder_error("not a directory".into()));
    }
    check_owner_and_mode(&md, trust, false).map_err(folder_error)?;
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|e| folder_error(e.to_string()))? {
        let path = entry.map_err(|e| folder_error(e.to_string()))?.path();
        if !policy::is_policy_file(&path) {
            continue;
        }
        let yaml = match read_trusted(&path, trust) {
            // Removed since the listing: gone.
            Ok(None) => continue,
            Ok(Some(text)) => Ok(text),
            Err(e) => Err(e),
        };
        let sidecar = read_trusted(&policy::sidecar_path(&path), trust);
        out.insert(path, Snapshot { yaml, sidecar });
    }
    Ok(out)
}

/// The text of `path`, `None` when there is no such file.
pub fn read_trusted(path: &Path, trust: &Trust) -> Result<Option<String>, FileError> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, &e)),
    };
    let real = if md.file_type().is_symlink() {
        trusted_target(path, trust)?
    } else {
        path.to_path_buf()
    };
    let untrusted = |reason: String| FileError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    // Looked at before opening: opening a device can have effects.
    let before = fs::symlink_metadata(&real).map_err(|e| io_error(path, &e))?;
    check_regular(&before).map_err(untrusted)?;
    // O_NONBLOCK: a FIFO swapped in after the check cannot block the open.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&real)
        .map_err(|e| io_error(path, &e))?;
    let md = file.metadata().map_err(|e| io_error(path, &e))?;
    check_regular(&md).map_err(untrusted)?;
    check_owner_and_mode(&md, trust, false).map_err(untrusted)?;
    if md.len() > trust.max_file_size {
        return Err(untrusted(too_large(md.len(), trust.max_file_size)));
    }
    let mut bytes = Vec::new();
    // The file may grow after fstat: never read past the cap.
    file.take(trust.max_file_size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > trust.max_file_size {
        return Err(untrusted(too_large(
            bytes.len() as u64,
            trust.max_file_size,
        )));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| untrusted("not UTF-8 text".into()))
}

/// The target of the symlink `link`, when it and every directory on the way
/// to it pass the test.
fn trusted_target(link: &Path, trust: &Trust) -> Result<PathBuf, FileError> {
    let untrusted = |reason: String| FileError::Untrusted {
        path: link.to_path_buf(),
        reason,
    };
    let target = fs::canonicalize(link)
        .map_err(|e| untrusted(format!("symlink that cannot be resolved: {e}")))?;
    for dir in target.ancestors().skip(1) {
        let md = fs::metadata(dir).map_err(|e| io_error(link, &e))?;
        // A sticky root-owned directory (/tmp) is safe on the way: nobody
        // else can replace root's entries in it.
        check_owner_and_mode(&md, trust, true).map_err(|reason| {
            untrusted(format!(
                "symlink to {}: directory {} is {reason}",
                target.display(),
                dir.display()
            ))
        })?;
    }
    Ok(target)
}

fn check_regular(md: &fs::Metadata) -> Result<(), String> {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    };
    Err(format!("a {kind}, not a regular file"))
}

fn check_owner_and_mode(md: &fs::Metadata, trust: &Trust, sticky_ok: bool) -> Result<(), String> {
    let uid = md.uid();
    if uid != 0 && uid != trust.owner {
        return Err(format!("owned by uid {uid}; only root's files are trusted"));
    }
    let mode = md.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !(sticky_ok && sticky) {
        return Err(format!("mode {mode:04o}: group- or world-writable"));
    }
    Ok(())
}

fn too_large(size: u64, limit: u64) -> String {
    format!("{size} bytes or more, over max_policy_file_size ({limit} bytes)")
}

fn io_error(path: &Path, e: &std::io::Error) -> FileError {
    FileError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `text` as the new file `name` in `dir`, never replacing anything:
/// a fresh temporary file is created exclusively (O_EXCL never follows a
/// symlink), synced, then linked to its name, which fails if the name exists.
pub fn create_new(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let target = dir.join(name);
    let tmp = dir.join(format!(
        ".tetragond-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::hard_link(&tmp, &target));
    // The temporary name is ours (created exclusively): it goes either way.
    let _ = fs::remove_file(&tmp);
    written?;
    fs::File::open(dir).and_then(|d| d.sync_all())?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tetragond-folder-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn trust() -> Trust {
        Trust::of_this_process(64)
    }

    fn reason(r: Result<Option<String>, FileError>) -> String {
        match r {
            Err(FileError::Untrusted { reason, .. }) => reason,
            other => panic!("expected untrusted, got {other:?}"),
        }
    }

    #[test]
    fn regular_own_files_are_read_and_missing_ones_are_none() {
        let dir = temp_dir("ok");
        fs::write(dir.join("a.yaml"), "x: 1\n").unwrap();
        assert_eq!(
            read_trusted(&dir.join("a.yaml"), &trust())
                .unwrap()
                .as_deref(),
            Some("x: 1\n")
        );
        assert_eq!(read_trusted(&dir.join("b.yaml"), &trust()).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writable_large_and_special_files_are_refused() {
        let dir = temp_dir("bad");
        let open = dir.join("open.yaml");
        fs::write(&open, "x").unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(reason(read_trusted(&open, &trust())).contains("0666"));
        let big = dir.join("big.yaml");
        fs::write(&big, "x".repeat(65)).unwrap();
        assert!(reason(read_trusted(&big, &trust())).contains("max_policy_file_size"));
        let fifo = dir.join("f.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(reason(read_trusted(&fifo, &trust())).contains("FIFO"));
        fs::create_dir(dir.join("d.yaml")).unwrap();
        assert!(reason(read_trusted(&dir.join("d.yaml"), &trust())).contains("directory"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_are_followed_only_to_trusted_places() {
        let dir = temp_dir("links");
        fs::create_dir(dir.join("real")).unwrap();
        fs::write(dir.join("real/p.yaml"), "y").unwrap();
        symlink(dir.join("real/p.yaml"), dir.join("good.yaml")).unwrap();
        assert_eq!(
            read_trusted(&dir.join("good.yaml"), &trust())
                .unwrap()
                .as_deref(),
            Some("y")
        );
        symlink("/dev/zero", dir.join("zero.toml")).unwrap();
        assert!(reason(read_trusted(&dir.join("zero.toml"), &trust())).contains("character device"));
        fs::create_dir(dir.join("open")).unwrap();
        fs::set_permissions(dir.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(dir.join("open/p.yaml"), "z").unwrap();
        symlink(dir.join("open/p.yaml"), dir.join("bad.yaml")).unwrap();
        let why = reason(read_trusted(&dir.join("bad.yaml"), &trust()));
        assert!(why.contains("directory") && why.contains("0777"), "{why}");
        symlink(dir.join("nowhere"), dir.join("dangling.yaml")).unwrap();
        assert!(reason(read_trusted(&dir.join("dangling.yaml"), &trust()))
            .contains("cannot be resolved"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_or_writable_folder_is_an_error_not_an_empty_folder() {
        let dir = temp_dir("folder");
        fs::write(dir.join("a.yaml"), "a").unwrap();
        assert_eq!(scan(&dir, &trust()).unwrap().len(), 1);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = scan(&dir, &trust()).unwrap_err();
        assert!(e.reason.contains("0777"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            scan(&dir, &trust()).is_err(),
            "a missing folder is not an empty one"
        );
    }

    #[test]
    fn fingerprints_follow_file_and_sidecar() {
        let snap = |yaml: &str, sidecar: Option<&str>| Snapshot {
            yaml: Ok(yaml.into()),
            sidecar: Ok(sidecar.map(Into::into)),
        };
        assert_eq!(snap("a", None).fingerprint(), snap("a", None).fingerprint());
        assert_ne!(snap("a", None).fingerprint(), snap("b", None).fingerprint());
        assert_ne!(
            snap("a", None).fingerprint(),
            snap("a", Some("")).fingerprint()
        );
    }

    #[test]
    fn create_new_never_replaces_nor_follows() {
        let dir = temp_dir("create");
        let outside = temp_dir("create-outside").join("victim");
        fs::write(&outside, "keep").unwrap();
        assert_eq!(
            create_new(&dir, "a.yaml", "one").unwrap(),
            dir.join("a.yaml")
        );
        let e = create_new(&dir, "a.yaml", "two").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(dir.join("a.yaml")).unwrap(), "one");
        symlink(&outside, dir.join("b.yaml")).unwrap();
        assert!(create_new(&dir, "b.yaml", "evil").is_err());
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(outside.parent().unwrap()).unwrap();
    }
}
