//! `maxData` buffers: the kernel posts a hook's `maxData` argument whole,
//! in pieces (`DataRecord`s), just before its event. The pieces are put
//! together here, by event (thread id and kernel time), and handed over
//! with the event.

use std::collections::HashMap;

use tetragond_ebpf::MAX_DATA;

use crate::events::Piece;

/// Buffers being put together at once, at most. The pieces of a buffer
/// come just before its event, so only one per CPU is ever in progress;
/// more means pieces whose event was lost (the ring buffer was full when
/// it was posted), which are dropped.
const MAX_PENDING: usize = 64;

/// A buffer put together: the argument it is, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeBuffer {
    pub arg: usize,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct WholeBuffers {
    pending: HashMap<(u32, u64), WholeBuffer>,
}

impl WholeBuffers {
    /// Adds a piece. A piece that does not follow the ones before (one
    /// was lost) is left out: the buffer stays the part read in order.
    pub fn add(&mut self, piece: Piece<'_>) {
        let key = (piece.tid, piece.ktime_ns);
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            self.pending.clear();
        }
        let buffer = self.pending.entry(key).or_insert_with(|| WholeBuffer {
            arg: usize::from(piece.arg),
            bytes: Vec::new(),
        });
        let fits = buffer.bytes.len() + piece.bytes.len() <= MAX_DATA as usize;
        if piece.offset as usize == buffer.bytes.len() && fits {
            buffer.bytes.extend_from_slice(piece.bytes);
        }
    }

    /// The buffer of the event posted by thread `tid` at `ktime_ns`, if
    /// its pieces came.
    pub fn take(&mut self, tid: u32, ktime_ns: u64) -> Option<WholeBuffer> {
        self.pending.remove(&(tid, ktime_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(tid: u32, offset: u32, bytes: &[u8]) -> Piece<'_> {
        Piece {
            tid,
            ktime_ns: 7,
            arg: 1,
            offset,
            bytes,
        }
    }

    #[test]
    fn pieces_are_put_together_by_event() {
        let mut buffers = WholeBuffers::default();
        buffers.add(piece(1, 0, b"hello "));
        buffers.add(piece(2, 0, b"other"));
        buffers.add(piece(1, 6, b"world"));
        let whole = buffers.take(1, 7).expect("the buffer of thread 1");
        assert_eq!(whole.arg, 1);
        assert_eq!(whole.bytes, b"hello world");
        assert_eq!(buffers.take(1, 7), None, "taken once");
        assert_eq!(buffers.take(2, 7).map(|w| w.bytes), Some(b"other".to_vec()));
        assert_eq!(buffers.take(3, 7), None);
    }

    #[test]
    fn a_buffer_stops_at_a_lost_piece() {
        let mut buffers = WholeBuffers::default();
        buffers.add(piece(1, 0, b"abc"));
        buffers.add(piece(1, 6, b"ghi"));
        buffers.add(piece(1, 9, b"jkl"));
        assert_eq!(buffers.take(1, 7).map(|w| w.bytes), Some(b"abc".to_vec()));
    }

    #[test]
    fn pieces_whose_event_never_came_do_not_pile_up() {
        let mut buffers = WholeBuffers::default();
        for tid in 0..10 * MAX_PENDING as u32 {
            buffers.add(piece(tid, 0, b"x"));
        }
        assert!(buffers.pending.len() <= MAX_PENDING);
    }
}
