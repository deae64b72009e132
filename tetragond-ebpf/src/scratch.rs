//! Per-CPU scratch memory, claimed by one program run at a time.
//!
//! The programs keep the event being built, the walk's state and their
//! buffers in per-CPU arrays, not on the 512-byte stack. A per-CPU value is
//! not a run's own: an LSM, fentry, fexit or uprobe program runs with
//! migration disabled but may be preempted (on a kernel with full or lazy
//! preemption, as Debian's 6.18), and any program may be interrupted by
//! one of ours running in an interrupt. Whoever runs in between on that CPU
//! would overwrite the first run's state, whose verdict would then be
//! taken on another call's data. So each scratch map has `SCRATCH_SLOTS`
//! entries per CPU, a run claims one at its start (`Held::take`) and
//! finds it again by its task (`slot`), and gives it back at its end.

use aya_ebpf::{helpers::generated::bpf_get_current_task, macros::map, maps::PerCpuArray};
use tetragond_ebpf::{record, SCRATCH_SLOTS};

use crate::{atomic_add, count_loss};

const SLOTS: usize = SCRATCH_SLOTS as usize;

/// This CPU's slots: who holds each, and which was claimed last.
#[repr(C)]
struct Claims {
    /// Per slot: the runs that raised it (see `claim`).
    busy: [u64; SLOTS],
    /// Per slot: the holder's task (its `task_struct` address), 0 when free.
    owner: [u64; SLOTS],
    /// Per slot: when it was claimed, in this CPU's claim order.
    claimed_at: [u64; SLOTS],
    /// The slot claimed last and still held on this CPU, as far as the runs
    /// that gave theirs back know (a hint: `slot` checks its owner).
    last: u64,
    /// The claim order's next number.
    next: u64,
}

#[map]
static CLAIMS: PerCpuArray<Claims> = PerCpuArray::with_max_entries(1, 0);

/// Not a slot: a scratch lookup with it finds nothing.
const NO_SLOT: u64 = SCRATCH_SLOTS as u64;

/// A scratch slot of this CPU held by the running program, given back
/// when dropped. Taken at the top of each program that uses scratch maps
/// (not through a closure: the compiler may leave one a function of its
/// own, a stack frame more on the deepest call chain, which 5.10 limits
/// to 512 bytes).
pub struct Held(u64);

impl Held {
    /// None, and the run counted as lost (`record::SCRATCH_BUSY`), when
    /// every slot is held by runs preempted or interrupted on this CPU.
    #[inline(always)]
    pub fn take() -> Option<Held> {
        let claimed = claim();
        if claimed < 0 {
            count_loss(record::SCRATCH_BUSY);
            return None;
        }
        Some(Held(claimed as u64))
    }
}

impl Drop for Held {
    #[inline(always)]
    fn drop(&mut self) {
        release(self.0);
    }
}

/// Claims a free slot: returns `slot | last << 8` (`last`: the hint to
/// put back), or -1 when none is free. A slot's `busy` count is raised by
/// an atomic add (one instruction: no interrupt or preemption splits it;
/// BPF_XADD, which Linux 5.10 has, as the old value is not asked for),
/// and the slot is this run's when the count it then reads is 1: of two
/// runs that raised it, at least the later reads 2; each that does gives
/// its raise back and tries the next slot.
#[no_mangle]
#[inline(never)]
pub extern "C" fn claim() -> i64 {
    let Some(c) = CLAIMS.get_ptr_mut(0) else {
        return -1;
    };
    let task = unsafe { bpf_get_current_task() };
    let mut i = 0;
    while i < SLOTS {
        let busy = unsafe { &raw mut (*c).busy[i] };
        atomic_add(busy, 1);
        if unsafe { core::ptr::read_volatile(busy) } == 1 {
            let c = unsafe { &mut *c };
            let last = c.last;
            c.owner[i] = task;
            c.claimed_at[i] = c.next;
            c.next += 1;
            c.last = i as u64;
            return (i as u64 | last << 8) as i64;
        }
        atomic_add(busy, u64::MAX);
        i += 1;
    }
    -1
}

/// Gives back the slot `claim` returned (with the hint it replaced: runs
/// that interrupted another nest, so the one resumed finds its slot first).
#[no_mangle]
#[inline(never)]
pub extern "C" fn release(claimed: u64) -> i64 {
    let Some(c) = CLAIMS.get_ptr_mut(0) else {
        return 0;
    };
    let i = (claimed & 0xff) as usize;
    if i >= SLOTS {
        return 0;
    }
    let c = unsafe { &mut *c };
    // Owner first: a slot whose count is down is never seen as its holder's.
    c.owner[i] = 0;
    c.last = claimed >> 8;
    atomic_add(unsafe { &raw mut c.busy[i] }, u64::MAX);
    0
}

/// The slot the running program holds: the last claimed when its holder
/// is the current task (a run is never preempted by one of its own
/// task), else the most recently claimed of those the current task holds
/// (the run was preempted and resumed after others claimed). `NO_SLOT`
/// when it holds none. A global function: verified once, one unknown
/// value for its callers whichever way it went.
#[no_mangle]
#[inline(never)]
pub extern "C" fn slot() -> u64 {
    let Some(c) = CLAIMS.get_ptr_mut(0) else {
        return NO_SLOT;
    };
    let c = unsafe { &mut *c };
    let task = unsafe { bpf_get_current_task() };
    let last = c.last as usize;
    if last < SLOTS && c.owner[last] == task {
        return last as u64;
    }
    let mut found = NO_SLOT;
    let mut newest = 0;
    let mut i = 0;
    while i < SLOTS {
        if c.owner[i] == task && (found == NO_SLOT || c.claimed_at[i] > newest) {
            found = i as u64;
            newest = c.claimed_at[i];
        }
        i += 1;
    }
    if found != NO_SLOT {
        c.last = found;
    }
    found
}

/// The running program's entry of a scratch map.
#[inline(always)]
pub fn scratch<T>(map: &PerCpuArray<T>) -> Option<*mut T> {
    map.get_ptr_mut(slot() as u32)
}
