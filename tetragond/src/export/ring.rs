//! The ring buffer reader: a thread of its own that drains the kernel's
//! ring buffer as soon as it has data, so neither the main loop's other
//! work (D-Bus, policy loads) nor a slow write delays it.
//!
//! It also reads /proc at once for exec and exit records: the kernel's exec
//! record carries only the filename, and a short-lived process (one killed
//! at its first syscall) is gone from /proc within a millisecond or so.
//! Records go to the main loop in batches, in ring buffer order, over a
//! bounded channel: when the main loop falls behind, this thread waits, the
//! ring buffer fills, and the kernel counts what it cannot store (reported
//! as `ring_buffer` drops): nothing piles up unbounded, nothing is lost
//! silently.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{MapData, RingBuf};
use tetragond_ebpf::{Event, ExecRecord, ExitRecord};
use tokio::sync::mpsc;

use crate::{
    events::{self, Record},
    process::procfs::{self, ProcInfo},
};

/// Records per batch, and batches in flight.
const BATCH: usize = 4096;
const BATCHES: usize = 16;

#[allow(
    clippy::large_enum_variant,
    reason = "policy events are the hot path: kept inline, not boxed per event"
)]
#[derive(Debug, Clone)]
pub enum Item {
    Policy(Event, Vec<u8>),
    /// With /proc as read right after the exec (None: already gone).
    Exec(Box<ExecRecord>, Option<ProcInfo>),
    /// With the wait status read right after the exit, when still there.
    Exit(ExitRecord, Option<i32>),
    Unknown,
}

/// Starts the reader; batches arrive on the returned channel.
pub fn spawn(mut ring: RingBuf<MapData>) -> std::io::Result<mpsc::Receiver<Vec<Item>>> {
    let (tx, rx) = mpsc::channel(BATCHES);
    std::thread::Builder::new()
        .name("ring-reader".into())
        .spawn(move || loop {
            wait_readable(&ring);
            let mut batch = Vec::new();
            while let Some(bytes) = ring.next() {
                let record = events::decode(&bytes);
                drop(bytes);
                batch.push(item(record));
                if batch.len() >= BATCH {
                    break;
                }
            }
            if !batch.is_empty() && tx.blocking_send(batch).is_err() {
                return; // the main loop is gone: the daemon is stopping
            }
        })?;
    Ok(rx)
}

fn item(record: Option<Record>) -> Item {
    match record {
        Some(Record::Policy(ev, data)) => Item::Policy(ev, data),
        Some(Record::Exec(rec)) => {
            let info = procfs::read_with(rec.tgid, rec.args_len == 0);
            Item::Exec(rec, info)
        }
        // The kernel's exit code when it had the offsets, else /proc's.
        Some(Record::Exit(rec)) if rec.has_exit_code != 0 => {
            Item::Exit(rec, Some(rec.exit_code as i32))
        }
        Some(Record::Exit(rec)) => Item::Exit(
            rec,
            procfs::read_stat_only(rec.tgid).and_then(|i| i.exit_code),
        ),
        None => Item::Unknown,
    }
}

/// poll(2) on the ring buffer: level triggered, so data that arrived while
/// a batch was handed over is never missed. Wakes once a second regardless.
fn wait_readable(ring: &RingBuf<MapData>) {
    let mut fd = libc::pollfd {
        fd: ring.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, 1000) };
}
