//! The ring buffer reader: a thread of its own that drains the kernel's
//! ring buffer as soon as it has data, so neither the main loop's other
//! work (D-Bus, policy loads, rendering, writing) nor a slow write delays
//! it.
//!
//! It also reads /proc at once for exec and exit records: the kernel's exec
//! record carries only the filename, and a short-lived process (one killed
//! at its first syscall) is gone from /proc within a millisecond or so.
//!
//! Records go to the main loop in batches, in ring buffer order, over a
//! bounded channel. When the main loop falls behind, this thread does not
//! wait (the kernel would then drop whatever comes next, a quiet process's
//! events as readily as a flood's): it keeps draining into the pending
//! batch, and past its usual size each process may add only a small share
//! more. A flooding process's excess is dropped here, counted by policy
//! (reason `backlog`), while other processes' events still go through.
//! Memory stays bounded at any rate: so many batches in flight, each of at
//! most `HARD_CAP` records. Drops never reorder a process's events.

use std::{
    collections::HashMap,
    ops::Range,
    os::fd::{AsFd, AsRawFd},
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tetragond_ebpf::{Event, ExecRecord, ExitRecord};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{
    events::{self, ImaHash, Record},
    export::{
        ima_waits::{ImaWaits, Waiting},
        whole_buffers::{WholeBuffer, WholeBuffers},
    },
    process::procfs::{self, ProcInfo},
};

/// A batch's size is its records plus one per `DATA_UNIT` bytes of their
/// data (strings, paths): it is handed over at `BATCH` while the main loop
/// keeps up.
const BATCH: usize = 2048;
const DATA_UNIT: usize = 256;
/// Policy events a batch takes beyond `BATCH` while the main loop is
/// behind; each process gets at most `SHARE` of them per batch.
const RESERVE: usize = 2048;
const SHARE: u32 = 64;
/// Exec and exit records are taken up to here (they give later events
/// their process); beyond it, everything is dropped and counted. With
/// `BATCHES` in flight, this bounds the reader's memory: about 4 MiB a
/// batch (a record is some 400 bytes).
const HARD_CAP: usize = BATCH + 2 * RESERVE;
/// Batches in flight to the main loop: some 32,000 events, 65 ms at
/// 500,000 events/s, absorb a stall of the main loop.
const BATCHES: usize = 16;
/// After a drain that found records, wait before the next one, so records
/// arrive by the hundred, not a wakeup (of this thread and the main loop)
/// for every few: each wakeup costs about as much CPU as a hundred events
/// (scripts/bench-events: 1.86 % of a core per 10k events/s at 100k/s with
/// a 1 ms pause, 1.42 % with 4 ms). After a large drain the pause is
/// short against the time the kernel's ring buffer takes to fill (10 ms at
/// 500,000 events/s with the 2 MiB of a 2-CPU machine); after a small one
/// (a low rate) it is longer. The first record after a quiet spell is
/// read at once (the wait below).
const COALESCE: Duration = Duration::from_millis(4);
const COALESCE_QUIET: Duration = Duration::from_millis(16);
/// Records in a drain from which the rate counts as high.
const LARGE_DRAIN: usize = BATCH / 2;

#[allow(
    clippy::large_enum_variant,
    reason = "policy events are the hot path: kept inline, not boxed per event"
)]
#[derive(Debug, Clone)]
pub enum Item {
    /// The event, where its data is in [`Batch::data`], its `maxData`
    /// argument's buffer, if it has one and it came, and its IMA hash
    /// (Tetragon's `ima_hash` text), if it asked for one and it came.
    Policy(Event, Range<usize>, Option<WholeArg>, Option<String>),
    /// With /proc as read right after the exec (None: already gone).
    Exec(Box<ExecRecord>, Option<ProcInfo>),
    /// With the wait status read right after the exit, when still there.
    Exit(ExitRecord, Option<i32>),
    Unknown,
}

/// A `maxData` buffer: the argument's index, and where its bytes are in
/// [`Batch::data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeArg {
    pub arg: usize,
    pub range: Range<usize>,
}

/// Records in ring buffer order, and what was dropped on the way.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Item>,
    /// The policy events' data, one buffer for the batch.
    pub data: Vec<u8>,
    /// Policy events dropped while the main loop was behind, by
    /// (policy slot, hook slot).
    pub backlog: HashMap<(u32, u32), u64>,
    /// Exec and exit records dropped past `HARD_CAP`.
    pub process_records_dropped: u64,
}

impl Batch {
    fn with_capacity() -> Self {
        Batch {
            items: Vec::with_capacity(BATCH),
            ..Batch::default()
        }
    }

    /// Records, and their data in `DATA_UNIT`s.
    fn size(&self) -> usize {
        self.items.len() + self.data.len() / DATA_UNIT
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.backlog.is_empty() && self.process_records_dropped == 0
    }
}

/// Starts the reader; batches arrive on the returned channel.
pub fn spawn(ring: RingBuf<MapData>) -> std::io::Result<mpsc::Receiver<Batch>> {
    let (tx, rx) = mpsc::channel(BATCHES);
    let reader = Reader {
        ring,
        out: Outbox {
            tx,
            batch: Batch::with_capacity(),
            shares: HashMap::new(),
            buffers: WholeBuffers::default(),
            ima: ImaWaits::default(),
        },
    };
    std::thread::Builder::new()
        .name("ring-reader".into())
        .spawn(move || {
            ask_short_slice();
            reader.run()
        })?;
    Ok(rx)
}

struct Reader {
    ring: RingBuf<MapData>,
    out: Outbox,
}

/// The batch being filled, and the way to the main loop.
struct Outbox {
    tx: mpsc::Sender<Batch>,
    /// The batch being filled.
    batch: Batch,
    /// Policy events each process added beyond `BATCH` to this batch.
    shares: HashMap<u32, u32>,
    /// `maxData` buffers whose events have not come yet.
    buffers: WholeBuffers,
    /// Events whose IMA hash has not come yet.
    ima: ImaWaits,
}

/// Whether the main loop is still there to take batches.
#[derive(Debug, PartialEq, Eq)]
enum Handed {
    Yes,
    NoRoom,
    Closed,
}

impl Reader {
    fn run(mut self) {
        loop {
            // A batch the main loop had no room for is offered again soon.
            let timeout_ms = if self.out.batch.is_empty() { 1000 } else { 1 };
            wait_readable(&self.ring, timeout_ms);
            let drained = match self.drain() {
                Some(n) => n,
                None => return,
            };
            self.out.expire_ima_waits();
            if self.out.hand_over() == Handed::Closed {
                return; // the main loop is gone: the daemon is stopping
            }
            if drained >= LARGE_DRAIN {
                std::thread::sleep(COALESCE);
            } else if drained > 0 {
                std::thread::sleep(COALESCE_QUIET);
            }
        }
    }

    /// Reads every record there is; None when the main loop is gone.
    fn drain(&mut self) -> Option<usize> {
        let mut n = 0;
        while let Some(bytes) = self.ring.next() {
            self.out.take(&bytes);
            drop(bytes);
            n += 1;
            if self.out.batch.size() >= BATCH && self.out.hand_over() == Handed::Closed {
                return None;
            }
        }
        Some(n)
    }
}

impl Outbox {
    /// Sends the batch when the channel has room.
    fn hand_over(&mut self) -> Handed {
        if self.batch.is_empty() {
            return Handed::Yes;
        }
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity());
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.shares.clear();
                Handed::Yes
            }
            Err(TrySendError::Full(batch)) => {
                self.batch = batch;
                Handed::NoRoom
            }
            Err(TrySendError::Closed(_)) => Handed::Closed,
        }
    }

    /// Adds one record to the batch, or counts it as dropped.
    fn take(&mut self, bytes: &[u8]) {
        let full = self.batch.size() >= HARD_CAP;
        let item = match events::decode(bytes) {
            Some(Record::Policy(ev, data)) => return self.take_policy_event(ev, data),
            Some(Record::Data(piece)) => return self.buffers.add(piece),
            Some(Record::Ima(hash)) => return self.take_ima_hash(hash),
            _ if full => {
                self.batch.process_records_dropped += 1;
                return;
            }
            Some(Record::Exec(rec)) => exec_item(rec),
            Some(Record::Exit(rec)) => exit_item(rec),
            None => Item::Unknown,
        };
        self.batch.items.push(item);
    }

    fn take_policy_event(&mut self, ev: Event, data: &[u8]) {
        let whole = self.buffers.take(ev.tid, ev.ktime_ns);
        if ev.ima_hash != 0 {
            let event = Waiting {
                ev,
                data: data.to_vec(),
                whole,
            };
            if let Some(w) = self.ima.hold(event, Instant::now()) {
                self.push_policy_event(w.ev, &w.data, w.whole, None);
            }
            return;
        }
        self.push_policy_event(ev, data, whole, None);
    }

    /// The events of the hash's thread, with it.
    fn take_ima_hash(&mut self, hash: ImaHash) {
        let text = hash.text();
        for w in self.ima.release(hash.tid) {
            self.push_policy_event(w.ev, &w.data, w.whole, text.clone());
        }
    }

    /// Events whose hash did not come in time, without it.
    fn expire_ima_waits(&mut self) {
        for w in self.ima.expired(Instant::now()) {
            self.push_policy_event(w.ev, &w.data, w.whole, None);
        }
    }

    fn push_policy_event(
        &mut self,
        ev: Event,
        data: &[u8],
        whole: Option<WholeBuffer>,
        ima_hash: Option<String>,
    ) {
        if !self.admit_policy_event(ev.tgid) {
            *self
                .batch
                .backlog
                .entry((ev.policy_slot, ev.hook_slot))
                .or_default() += 1;
            return;
        }
        let start = self.batch.data.len();
        self.batch.data.extend_from_slice(data);
        let range = start..self.batch.data.len();
        let whole = whole.map(|w| {
            let start = self.batch.data.len();
            self.batch.data.extend_from_slice(&w.bytes);
            WholeArg {
                arg: w.arg,
                range: start..self.batch.data.len(),
            }
        });
        self.batch
            .items
            .push(Item::Policy(ev, range, whole, ima_hash));
    }

    /// Always while the batch is below `BATCH`; then within the process's
    /// share of the reserve.
    fn admit_policy_event(&mut self, tgid: u32) -> bool {
        let len = self.batch.size();
        if len < BATCH {
            return true;
        }
        if len >= BATCH + RESERVE {
            return false;
        }
        let share = self.shares.entry(tgid).or_default();
        *share += 1;
        *share <= SHARE
    }
}

fn exec_item(rec: Box<ExecRecord>) -> Item {
    let info = procfs::read_with(rec.tgid, rec.args_len == 0);
    Item::Exec(rec, info)
}

/// The kernel's exit code when it had the offsets, else /proc's.
fn exit_item(rec: ExitRecord) -> Item {
    let status = if rec.has_exit_code != 0 {
        Some(rec.exit_code as i32)
    } else {
        procfs::read_stat_only(rec.tgid).and_then(|i| i.exit_code)
    };
    Item::Exit(rec, status)
}

/// The time slice the reader asks for: with it, a kernel that schedules by
/// EEVDF (6.12 and later) runs the reader as soon as it wakes instead of
/// after the running task's slice (a few milliseconds, in which a flood
/// fills the ring buffer).
const SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of sched_setattr(2), its first version.
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Best effort: older kernels ignore or refuse it, no privilege is needed.
fn ask_short_slice() {
    // SAFETY: getpriority and gettid take and return plain integers.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    let attr = SchedAttr {
        size: size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: SLICE_NS,
        deadline: 0,
        period: 0,
    };
    // SAFETY: a valid sched_attr of the size it states, for this thread (0).
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        tracing::debug!(
            "ring reader keeps the default time slice: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// poll(2) on the ring buffer: level triggered, so data that arrived while
/// a batch was handed over is never missed.
fn wait_readable(ring: &RingBuf<MapData>, timeout_ms: i32) {
    let mut fd = libc::pollfd {
        fd: ring.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, timeout_ms) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tetragond_ebpf::record;

    fn outbox(room: usize) -> (Outbox, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(BATCHES);
        // Fill the channel but for `room` batches: the main loop is behind.
        for _ in room..BATCHES {
            tx.try_send(Batch::default()).expect("room");
        }
        let out = Outbox {
            tx,
            batch: Batch::with_capacity(),
            shares: HashMap::new(),
            buffers: WholeBuffers::default(),
            ima: ImaWaits::default(),
        };
        (out, rx)
    }

    fn policy_record(tgid: u32, policy_slot: u32) -> Vec<u8> {
        // SAFETY: Event is plain data; all zeroes is a valid value.
        let mut ev: Event = unsafe { std::mem::zeroed() };
        ev.kind = record::POLICY_EVENT;
        ev.tgid = tgid;
        ev.policy_slot = policy_slot;
        // SAFETY: plain data, read as bytes while `ev` lives.
        unsafe {
            std::slice::from_raw_parts((&ev as *const Event).cast::<u8>(), size_of::<Event>())
        }
        .to_vec()
    }

    fn tgids(batch: &Batch) -> Vec<u32> {
        batch
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Policy(ev, ..) => Some(ev.tgid),
                _ => None,
            })
            .collect()
    }

    fn data_record(tid: u32, offset: u32, bytes: &[u8]) -> Vec<u8> {
        let mut rec = tetragond_ebpf::DataRecord {
            kind: record::DATA,
            tid,
            ktime_ns: 0,
            offset,
            len: bytes.len() as u16,
            arg: 2,
            bytes: [0; tetragond_ebpf::DATA_CHUNK],
        };
        rec.bytes[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: plain data, read as bytes while `rec` lives; only the
        // used part is posted, as the kernel does.
        unsafe {
            std::slice::from_raw_parts(
                (&rec as *const tetragond_ebpf::DataRecord).cast::<u8>(),
                tetragond_ebpf::DATA_HEADER_LEN + bytes.len(),
            )
        }
        .to_vec()
    }

    #[test]
    fn a_max_data_buffer_comes_with_its_event() {
        let (mut out, _rx) = outbox(BATCHES);
        out.take(&data_record(0, 0, b"first piece, "));
        out.take(&data_record(0, 13, b"second piece"));
        out.take(&policy_record(1, 7));
        out.take(&policy_record(1, 7));
        let items = &out.batch.items;
        let Item::Policy(_, _, Some(whole), _) = &items[0] else {
            panic!("no buffer with the event: {:?}", items[0]);
        };
        assert_eq!(whole.arg, 2);
        assert_eq!(
            &out.batch.data[whole.range.clone()],
            b"first piece, second piece"
        );
        assert!(
            matches!(items[1], Item::Policy(_, _, None, _)),
            "the next event of the thread has none"
        );
    }

    /// The main loop behind: a flood fills the batch, a quiet process's
    /// events still all get in, the flood's excess is counted by policy,
    /// and the batch stays bounded.
    #[test]
    fn a_flood_does_not_cost_a_quiet_process_its_events() {
        let (mut out, _rx) = outbox(0);
        let (flood, quiet) = (policy_record(1, 7), policy_record(2, 8));
        for i in 0..100_000 {
            out.take(&flood);
            // Within its share of one batch.
            if i % 2000 == 0 {
                out.take(&quiet);
            }
            assert_eq!(out.hand_over(), Handed::NoRoom);
        }
        let got = tgids(&out.batch);
        assert_eq!(got.iter().filter(|&&t| t == 2).count(), 50);
        let flooded = got.iter().filter(|&&t| t == 1).count();
        assert!(flooded <= BATCH + SHARE as usize, "{flooded}");
        assert_eq!(
            out.batch.backlog.get(&(7, 0)).copied(),
            Some(100_000 - flooded as u64)
        );
        assert!(out.batch.size() <= HARD_CAP);
    }

    /// While the main loop keeps up, nothing is dropped and batches go out
    /// whole, in order.
    #[test]
    fn keeping_up_drops_nothing() {
        let (mut out, mut rx) = outbox(BATCHES);
        for tgid in 0..(3 * BATCH as u32) {
            out.take(&policy_record(tgid, 1));
            if out.batch.size() >= BATCH {
                assert_eq!(out.hand_over(), Handed::Yes);
            }
        }
        let mut seen = vec![];
        while let Ok(batch) = rx.try_recv() {
            assert!(batch.backlog.is_empty());
            seen.extend(tgids(&batch));
        }
        assert_eq!(seen, (0..3 * BATCH as u32).collect::<Vec<_>>());
    }

    fn ima_record(tid: u32, algo: i32, first: u8) -> Vec<u8> {
        let mut rec = tetragond_ebpf::ImaRecord {
            kind: record::IMA_HASH,
            tid,
            algo,
            _pad: 0,
            hash: [0; tetragond_ebpf::IMA_HASH_MAX],
        };
        rec.hash[0] = first;
        // SAFETY: plain data, read as bytes while `rec` lives.
        unsafe {
            std::slice::from_raw_parts(
                (&rec as *const tetragond_ebpf::ImaRecord).cast::<u8>(),
                size_of::<tetragond_ebpf::ImaRecord>(),
            )
        }
        .to_vec()
    }

    /// An event that asked for an IMA hash waits for its thread's hash and
    /// goes out with it, after the events that came meanwhile; a hash
    /// nobody waits for is dropped.
    #[test]
    fn an_event_waits_for_its_ima_hash() {
        let (mut out, _rx) = outbox(BATCHES);
        let mut hashed = policy_record(5, 3);
        // SAFETY: `hashed` holds one Event's bytes.
        let mut ev: Event = unsafe { std::ptr::read_unaligned(hashed.as_ptr().cast()) };
        ev.tid = 5;
        ev.ima_hash = 1;
        // SAFETY: plain data, read as bytes while `ev` lives.
        hashed = unsafe {
            std::slice::from_raw_parts((&ev as *const Event).cast::<u8>(), size_of::<Event>())
        }
        .to_vec();
        out.take(&hashed);
        assert!(out.batch.items.is_empty(), "held until its hash comes");
        out.take(&policy_record(6, 3));
        out.take(&ima_record(9, 4, 0xab));
        out.take(&ima_record(5, 4, 0xcd));
        let sent: Vec<(u32, Option<String>)> = out
            .batch
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Policy(ev, _, _, hash) => Some((ev.tgid, hash.clone())),
                _ => None,
            })
            .collect();
        let digest = format!("sha256:cd{}", "0".repeat(62));
        assert_eq!(sent, vec![(6, None), (5, Some(digest))]);
    }

    #[test]
    fn a_closed_channel_stops_the_reader() {
        let (mut out, rx) = outbox(BATCHES);
        drop(rx);
        out.take(&policy_record(1, 1));
        assert_eq!(out.hand_over(), Handed::Closed);
    }
}
