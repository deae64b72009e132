//! Events waiting for their IMA hash: an LSM hook's event that asked for
//! one (`Event::ima_hash`) is posted by the hook's program, and the hash
//! by its companion program, which runs right after it in the same thread
//! (`ImaRecord`). The events are held here, by thread, until it comes.
//!
//! A hash that never comes (its record lost to a full ring buffer) must
//! not hold an event for ever, nor a flood hold memory without bound: an
//! event goes without its hash after `WAIT`, or at once when `MAX_WAITING`
//! events already wait.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tetragond_ebpf::Event;

use super::whole_buffers::WholeBuffer;

/// How long an event waits for its hash. The companion hashes the whole
/// file before the hook returns, so a large file on a slow disk takes
/// a while; the record itself follows within the same call.
const WAIT: Duration = Duration::from_secs(5);
/// Events waiting at once, at most.
const MAX_WAITING: usize = 4096;

/// An event held for its hash, with what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub ev: Event,
    pub data: Vec<u8>,
    pub whole: Option<WholeBuffer>,
}

#[derive(Debug, Default)]
pub struct ImaWaits {
    by_tid: HashMap<u32, Vec<(Instant, Waiting)>>,
    waiting: usize,
}

impl ImaWaits {
    /// Holds `event` for its thread's hash; gives it back when too many
    /// already wait (it then goes without).
    pub fn hold(&mut self, event: Waiting, now: Instant) -> Option<Waiting> {
        if self.waiting >= MAX_WAITING {
            return Some(event);
        }
        self.waiting += 1;
        self.by_tid
            .entry(event.ev.tid)
            .or_default()
            .push((now, event));
        None
    }

    /// The events thread `tid` holds, in order: its hash has come.
    pub fn release(&mut self, tid: u32) -> Vec<Waiting> {
        let held = self.by_tid.remove(&tid).unwrap_or_default();
        self.waiting -= held.len();
        held.into_iter().map(|(_, w)| w).collect()
    }

    /// The events that have waited `WAIT` by `now`, in the order they came
    /// by thread.
    pub fn expired(&mut self, now: Instant) -> Vec<Waiting> {
        let mut out = Vec::new();
        self.by_tid.retain(|_, held| {
            let (old, young): (Vec<_>, Vec<_>) = std::mem::take(held)
                .into_iter()
                .partition(|(since, _)| now.duration_since(*since) >= WAIT);
            out.extend(old.into_iter().map(|(_, w)| w));
            *held = young;
            !held.is_empty()
        });
        self.waiting -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(tid: u32, selector: u8) -> Waiting {
        // SAFETY: Event is plain data; all zeroes is a valid value.
        let mut ev: Event = unsafe { std::mem::zeroed() };
        ev.tid = tid;
        ev.selector = selector;
        Waiting {
            ev,
            data: vec![selector],
            whole: None,
        }
    }

    #[test]
    fn a_hash_releases_its_threads_events_in_order() {
        let mut waits = ImaWaits::default();
        let now = Instant::now();
        assert!(waits.hold(waiting(7, 1), now).is_none());
        assert!(waits.hold(waiting(8, 2), now).is_none());
        assert!(waits.hold(waiting(7, 3), now).is_none());
        let released: Vec<u8> = waits.release(7).iter().map(|w| w.ev.selector).collect();
        assert_eq!(released, [1, 3]);
        assert!(waits.release(7).is_empty(), "released once");
        assert_eq!(waits.waiting, 1);
    }

    #[test]
    fn an_event_whose_hash_never_comes_goes_without_it() {
        let mut waits = ImaWaits::default();
        let start = Instant::now();
        waits.hold(waiting(7, 1), start);
        waits.hold(waiting(9, 2), start + WAIT / 2);
        assert!(waits.expired(start + WAIT / 2).is_empty());
        let gone: Vec<u8> = waits
            .expired(start + WAIT)
            .iter()
            .map(|w| w.ev.selector)
            .collect();
        assert_eq!(gone, [1]);
        assert_eq!(waits.waiting, 1);
        assert_eq!(waits.expired(start + 2 * WAIT).len(), 1);
        assert_eq!(waits.waiting, 0);
    }

    #[test]
    fn waiting_is_bounded() {
        let mut waits = ImaWaits::default();
        let now = Instant::now();
        for i in 0..MAX_WAITING as u32 {
            assert!(waits.hold(waiting(i, 0), now).is_none());
        }
        assert!(
            waits.hold(waiting(1, 9), now).is_some(),
            "given back, to go without its hash"
        );
    }
}
