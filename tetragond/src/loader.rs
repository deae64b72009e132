//! The daemon's half of `process_loader` events (see `compile/loader.rs`):
//! each (process, file) is written once among the last 1,024 pairs, as
//! Tetragon's, a process being an exec (pid and start: a reused pid is
//! another, where Tetragon keys by pid), with the file's GNU build ID,
//! read from the file (its ELF notes only) and kept per path while the
//! file is unchanged.
//!
//! The mapped file is any user's: one on a FUSE mount its owner serves can
//! hold a `stat` or `open` as long as it likes. So the build ID is read,
//! and the event rendered, by a worker thread behind a bounded queue; the
//! main loop only queues (never waits) and writes the finished lines. What
//! does not fit in the queue is dropped and counted (`loader_backlog`).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
    sync::{mpsc, Arc},
    time::SystemTime,
};

use crate::{
    clock::Clock,
    events::{self, Exported, LoadedFile},
    process::Process,
};

/// (process, path) pairs remembered, as Tetragon's.
const SEEN: usize = 1024;
/// Build IDs remembered (the same libraries are mapped by every process).
const BUILD_IDS: usize = 1024;
/// Mappings waiting for their build ID at most; more are dropped.
pub const QUEUE: usize = 256;

/// A process: its pid and its exec's start (kernel clock ns).
pub type Exec = (u32, u64);

/// (process, path) pairs already written.
#[derive(Default)]
pub struct Seen {
    seen: HashSet<(Exec, String)>,
    order: VecDeque<(Exec, String)>,
}

impl Seen {
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
}

/// A mapping to write as a `process_loader`, once its build ID is read.
pub struct Mapping {
    pub process: Arc<Process>,
    pub path: String,
    pub policy_name: String,
    pub tid: u32,
    pub ktime_ns: u64,
}

/// Reads a file's build ID (a parameter so that tests can make it wait).
pub type ReadBuildId = fn(&Path) -> Option<Vec<u8>>;

/// The queue to the worker that reads build IDs and renders the events,
/// started at the first mapping (most hosts never have a loader policy).
pub struct Loader {
    clock: Clock,
    node_name: String,
    read: ReadBuildId,
    /// The rendered events, for the main loop to write.
    done: tokio::sync::mpsc::Sender<Exported>,
    queue: Option<mpsc::SyncSender<Mapping>>,
}

impl Loader {
    /// Events are dated with `clock`, on `node_name`, and sent to `done`.
    pub fn new(
        clock: Clock,
        node_name: String,
        read: ReadBuildId,
        done: tokio::sync::mpsc::Sender<Exported>,
    ) -> Loader {
        Loader {
            clock,
            node_name,
            read,
            done,
            queue: None,
        }
    }

    /// Queues `mapping`; never waits. False when it was dropped (the
    /// queue is full, or the worker could not be started).
    pub fn submit(&mut self, mapping: Mapping) -> bool {
        if self.queue.is_none() {
            self.queue = self
                .spawn()
                .inspect_err(|e| tracing::error!("process_loader worker: {e}"))
                .ok();
        }
        self.queue
            .as_ref()
            .is_some_and(|queue| queue.try_send(mapping).is_ok())
    }

    fn spawn(&self) -> std::io::Result<mpsc::SyncSender<Mapping>> {
        let (queue, mappings) = mpsc::sync_channel(QUEUE);
        let mut worker = Worker {
            clock: self.clock,
            node_name: self.node_name.clone(),
            build_ids: BuildIds::new(self.read),
            done: self.done.clone(),
        };
        std::thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                while let Ok(mapping) = mappings.recv() {
                    if !worker.render(&mapping) {
                        return;
                    }
                }
            })?;
        Ok(queue)
    }
}

struct Worker {
    clock: Clock,
    node_name: String,
    build_ids: BuildIds,
    done: tokio::sync::mpsc::Sender<Exported>,
}

impl Worker {
    /// False once the main loop has stopped taking events.
    fn render(&mut self, m: &Mapping) -> bool {
        let loaded = LoadedFile {
            path: &m.path,
            build_id: self.build_ids.get(&m.path),
            policy_name: &m.policy_name,
            tid: m.tid,
            ktime_ns: m.ktime_ns,
        };
        let line = events::loader_event(&loaded, &m.process, &self.clock, &self.node_name);
        self.done.blocking_send(line).is_ok()
    }
}

/// Build IDs by path, with the file's modification time and size when read
/// (empty when it has none).
struct BuildIds {
    read: ReadBuildId,
    by_path: HashMap<String, (SystemTime, u64, Vec<u8>)>,
}

impl BuildIds {
    fn new(read: ReadBuildId) -> BuildIds {
        BuildIds {
            read,
            by_path: HashMap::new(),
        }
    }

    /// The build ID of the file at `path`; empty when it has none or
    /// cannot be read.
    fn get(&mut self, path: &str) -> &[u8] {
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let fresh = match (stamp, self.by_path.get(path)) {
            (Some((time, len)), Some((t, l, _))) => time != *t || len != *l,
            _ => true,
        };
        if fresh {
            if self.by_path.len() >= BUILD_IDS {
                self.by_path.clear();
            }
            let (time, len) = stamp.unwrap_or((SystemTime::UNIX_EPOCH, 0));
            let id = (self.read)(Path::new(path)).unwrap_or_default();
            self.by_path.insert(path.to_string(), (time, len, id));
        }
        self.by_path
            .get(path)
            .map_or(&[][..], |(_, _, id)| id.as_slice())
    }
}

/// The GNU build ID of the ELF file at `path`: opened without blocking and
/// only when it is a regular file (a FIFO put in its place is not read),
/// and read in part (its headers and notes).
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
    use std::sync::{Condvar, Mutex};

    #[test]
    fn a_pair_is_written_once_among_the_last_ones() {
        let mut seen = Seen::default();
        assert!(seen.first((1, 5), "/lib/libc.so.6"));
        assert!(!seen.first((1, 5), "/lib/libc.so.6"));
        assert!(seen.first((2, 5), "/lib/libc.so.6"));
        assert!(seen.first((1, 9), "/lib/libc.so.6"), "pid 1 reused");
        for pid in 10..10 + SEEN as u32 {
            seen.first((pid, 0), "/lib/x");
        }
        assert!(
            seen.first((1, 5), "/lib/libc.so.6"),
            "forgotten after {SEEN} others"
        );
        assert_eq!(seen.order.len(), SEEN);
    }

    #[test]
    fn the_test_binary_has_a_build_id_and_a_fifo_is_not_read() {
        let me = std::env::current_exe().expect("the test binary");
        let mut ids = BuildIds::new(build_id_of);
        let id = ids.get(&me.to_string_lossy()).to_vec();
        assert!(id.len() >= 16, "rustc links with a build ID: {id:?}");
        let dir = std::env::temp_dir().join(format!("loader-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("no NUL");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(ids.get(&fifo.to_string_lossy()).is_empty());
        assert!(build_id(&b"not an ELF file"[..]).is_none());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Held shut until the test opens it: stands for a file whose reading
    /// does not return (a FUSE server that never answers).
    static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

    fn read_when_open(_: &Path) -> Option<Vec<u8>> {
        let (open, turn) = &GATE;
        let mut open = open.lock().expect("gate");
        while !*open {
            open = turn.wait(open).expect("gate");
        }
        Some(vec![0xab; 20])
    }

    fn mapping(path: &str) -> Mapping {
        Mapping {
            process: Arc::new(Process {
                pid: 42,
                binary: "/bin/tool".into(),
                ..Process::default()
            }),
            path: path.into(),
            policy_name: "loads".into(),
            tid: 42,
            ktime_ns: 1,
        }
    }

    #[test]
    fn a_read_that_does_not_return_fills_the_queue_and_nothing_waits() {
        let (done, mut lines) = tokio::sync::mpsc::channel(QUEUE + 8);
        let mut loader = Loader::new(Clock::now(), "node".into(), read_when_open, done);
        // The first is taken by the worker (and held), QUEUE more wait.
        let submitted = (0..QUEUE + 20)
            .filter(|i| loader.submit(mapping(&format!("/fuse/{i}"))))
            .count();
        assert!(
            (QUEUE..=QUEUE + 1).contains(&submitted),
            "{submitted} taken of {}: the rest dropped, not waited for",
            QUEUE + 20
        );
        assert!(lines.try_recv().is_err(), "no event before its build ID");
        let (open, turn) = &GATE;
        *open.lock().expect("gate") = true;
        turn.notify_all();
        let first = lines.blocking_recv().expect("the first mapping's event");
        let text = String::from_utf8(first.line).expect("JSON");
        assert!(text.contains(r#""path":"/fuse/0""#), "{text}");
        assert!(text.contains(r#""buildid":"q6ur"#), "{text}");
        assert_eq!(first.policy_name, "loads");
    }
}
