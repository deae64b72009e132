//! Return hooks' calls in flight: the entry half's event, held until the
//! exit half's completes it (see [`ReturnHalf`](crate::compile::ReturnHalf)).

use std::collections::HashMap;

use tetragond_ebpf::Event;

/// Calls held at most. A call whose exit half never posts (its return
/// filters did not match, a thread killed in the call) stays until the
/// same thread's next call on the hook, or until the table is full, when
/// the oldest goes.
pub const MAX_CALLS_HELD: usize = 16_384;

/// An entry half's event and its payload, and its `maxData` argument's
/// buffer whole (its index and bytes) when it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCall {
    pub event: Event,
    pub payload: Vec<u8>,
    pub whole: Option<(usize, Vec<u8>)>,
}

/// Entry events by (thread, entry half's slot).
#[derive(Debug, Default)]
pub struct CallsInFlight {
    calls: HashMap<(u32, u32), HeldCall>,
}

impl CallsInFlight {
    /// Holds an entry half's event, in place of the thread's last one on
    /// that hook (a call has one return).
    pub fn hold(&mut self, event: &Event, payload: &[u8], whole: Option<(usize, &[u8])>) {
        let key = (event.tid, event.hook_slot);
        if self.calls.len() >= MAX_CALLS_HELD && !self.calls.contains_key(&key) {
            self.forget_oldest();
        }
        let call = HeldCall {
            event: *event,
            payload: payload.to_vec(),
            whole: whole.map(|(arg, bytes)| (arg, bytes.to_vec())),
        };
        self.calls.insert(key, call);
    }

    /// The entry event an exit half's event completes, if held: the same
    /// thread's, of the entry half it names, of the same policy.
    pub fn take(&mut self, exit: &Event) -> Option<HeldCall> {
        let key = (exit.tid, exit.pair_slot);
        let held = self.calls.get(&key)?;
        if held.event.policy_slot != exit.policy_slot || held.event.ktime_ns > exit.ktime_ns {
            return None;
        }
        self.calls.remove(&key)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// A scan, on a full table only.
    fn forget_oldest(&mut self) {
        let oldest = self
            .calls
            .iter()
            .min_by_key(|(_, call)| call.event.ktime_ns)
            .map(|(key, _)| *key);
        if let Some(key) = oldest {
            self.calls.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tetragond_ebpf::{record, return_half, COMM_LEN, MAX_ARGS, PATH_LEN};

    fn entry(tid: u32, slot: u32, ktime_ns: u64) -> Event {
        Event {
            kind: record::POLICY_EVENT,
            data_len: 0,
            ktime_ns,
            policy_slot: 1,
            hook_slot: slot,
            tgid: tid,
            tid,
            uid: 0,
            gid: 0,
            action: 0,
            enforced: 0,
            mode: 0,
            selector: 0,
            signal: 0,
            repeats: 0,
            kernel_stack_len: 0,
            user_stack_len: 0,
            pair_slot: 0,
            return_half: return_half::ENTRY,
            ima_hash: 0,
            _pad: [0; 2],
            args: [0; MAX_ARGS],
            comm: [0; COMM_LEN],
            exe: [0; PATH_LEN],
        }
    }

    fn exit(tid: u32, entry_slot: u32, ktime_ns: u64) -> Event {
        Event {
            hook_slot: entry_slot + 1,
            pair_slot: entry_slot,
            return_half: return_half::EXIT,
            ..entry(tid, entry_slot + 1, ktime_ns)
        }
    }

    #[test]
    fn an_exit_completes_its_own_threads_call_once() {
        let mut calls = CallsInFlight::default();
        calls.hold(&entry(7, 3, 10), b"args", None);
        calls.hold(&entry(8, 3, 11), b"other", None);
        assert_eq!(calls.take(&exit(9, 3, 12)), None, "another thread");
        assert_eq!(calls.take(&exit(7, 4, 12)), None, "another hook");
        let held = calls.take(&exit(7, 3, 12)).expect("held");
        assert_eq!(held.payload, b"args");
        assert_eq!(calls.take(&exit(7, 3, 13)), None, "taken once");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn a_new_call_replaces_the_threads_last_and_a_full_table_forgets_the_oldest() {
        let mut calls = CallsInFlight::default();
        calls.hold(&entry(7, 3, 10), b"first", None);
        calls.hold(&entry(7, 3, 20), b"second", None);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls.take(&exit(7, 3, 21)).expect("held").payload,
            b"second"
        );
        for tid in 0..MAX_CALLS_HELD as u32 {
            calls.hold(&entry(tid, 1, 100 + u64::from(tid)), b"", None);
        }
        calls.hold(&entry(u32::MAX, 1, 1_000_000), b"", None);
        assert_eq!(calls.len(), MAX_CALLS_HELD);
        assert_eq!(calls.take(&exit(0, 1, 2_000_000)), None, "the oldest went");
        assert!(calls.take(&exit(1, 1, 2_000_000)).is_some());
    }
}
