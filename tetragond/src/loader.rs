//! The daemon's half of `process_loader` events (see `compile/loader.rs`):
//! each (process, file) is written once among the last 1,024 pairs, as
//! Tetragon's, a process being an exec (pid and start: a reused pid is
//! another, where Tetragon keys by pid), with the file's GNU build ID,
//! read from the file (its ELF notes only) and kept per path while the
//! file is unchanged.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
    time::SystemTime,
};

/// (process, path) pairs remembered, as Tetragon's.
const SEEN: usize = 1024;
/// Build IDs remembered (the same libraries are mapped by every process).
const BUILD_IDS: usize = 1024;

/// A process: its pid and its exec's start (kernel clock ns).
pub type Exec = (u32, u64);

#[derive(Default)]
pub struct Loads {
    seen: HashSet<(Exec, String)>,
    order: VecDeque<(Exec, String)>,
    /// By path: the file's modification time and size when read, and its
    /// build ID (empty when it has none).
    build_ids: HashMap<String, (SystemTime, u64, Vec<u8>)>,
}

impl Loads {
    /// True the first time process `exec` maps `path` among the last
    /// [`SEEN`] pairs.
    pub fn first(&mut self, exec: Exec, path: &str) -> bool {
        let key = (exec, path.to_string());
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == SEEN {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// The build ID of the file at `path`; empty when it has none or
    /// cannot be read.
    pub fn build_id(&mut self, path: &str) -> &[u8] {
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let fresh = match (stamp, self.build_ids.get(path)) {
            (Some((time, len)), Some((t, l, _))) => time != *t || len != *l,
            _ => true,
        };
        if fresh {
            if self.build_ids.len() >= BUILD_IDS {
                self.build_ids.clear();
            }
            let (time, len) = stamp.unwrap_or((SystemTime::UNIX_EPOCH, 0));
            let id = build_id_of(Path::new(path)).unwrap_or_default();
            self.build_ids.insert(path.to_string(), (time, len, id));
        }
        self.build_ids
            .get(path)
            .map_or(&[][..], |(_, _, id)| id.as_slice())
    }
}

/// The GNU build ID of the ELF file at `path`: opened without blocking and
/// only when it is a regular file (a FIFO put in its place cannot stall the
/// daemon), and read in part (its headers and notes).
pub fn build_id_of(path: &Path) -> Option<Vec<u8>> {
    let file = crate::usdt::open_binary(path).ok()?;
    build_id(&object::ReadCache::new(file))
}

/// The GNU build ID of an ELF image, None when it has none or is not one.
pub fn build_id<'a, R: object::ReadRef<'a>>(data: R) -> Option<Vec<u8>> {
    use object::Object;
    let file = object::File::parse(data).ok()?;
    file.build_id().ok().flatten().map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_written_once_among_the_last_ones() {
        let mut loads = Loads::default();
        assert!(loads.first((1, 5), "/lib/libc.so.6"));
        assert!(!loads.first((1, 5), "/lib/libc.so.6"));
        assert!(loads.first((2, 5), "/lib/libc.so.6"));
        assert!(loads.first((1, 9), "/lib/libc.so.6"), "pid 1 reused");
        for pid in 10..10 + SEEN as u32 {
            loads.first((pid, 0), "/lib/x");
        }
        assert!(
            loads.first((1, 5), "/lib/libc.so.6"),
            "forgotten after {SEEN} others"
        );
        assert_eq!(loads.order.len(), SEEN);
    }

    #[test]
    fn the_test_binary_has_a_build_id_and_a_fifo_is_not_read() {
        let me = std::env::current_exe().expect("the test binary");
        let mut loads = Loads::default();
        let id = loads.build_id(&me.to_string_lossy()).to_vec();
        assert!(id.len() >= 16, "rustc links with a build ID: {id:?}");
        let dir = std::env::temp_dir().join(format!("loader-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("no NUL");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(loads.build_id(&fifo.to_string_lossy()).is_empty());
        assert!(build_id(&b"not an ELF file"[..]).is_none());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
