//! Which hook slots an event runs: the sets behind `HOOK_LISTS` and
//! `BINARY_GATES` (see [`HookSet`]), and the order in which a change to
//! them reaches the kernel.
//!
//! A swap is made before it breaks: every set it touches first grows to
//! hold the old and the new slots, then shrinks to the new ones. Each map
//! update is atomic, so an event sees the old version, both, or the new
//! one, never neither, even when a hook moves from one set to another.

use std::collections::{BTreeMap, BTreeSet};

use tetragond_ebpf::{GateKey, HookKey, HookSet, MAX_HOOKS};

/// Where a hook slot is dispatched from: the set of `key` that runs for
/// every event, or (`binary`) the one that runs only for that executable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listing {
    pub key: HookKey,
    pub binary: Option<String>,
    pub slot: u32,
    /// The stacks the hook may post (see `HookSet::stacks`).
    pub stacks: u8,
}

/// A dispatch set: the hooks a key runs for every event, or those it runs
/// only when the executable is `binary_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetId {
    Every(HookKey),
    Gate(GateKey),
}

impl SetId {
    pub fn gate(key: HookKey, binary_id: u32) -> Self {
        SetId::Gate(GateKey {
            site: key.site,
            sub_id: key.sub_id,
            binary_id,
        })
    }

    fn key(&self) -> HookKey {
        match self {
            SetId::Every(key) => *key,
            SetId::Gate(g) => HookKey {
                site: g.site,
                sub_id: g.sub_id,
            },
        }
    }
}

/// One map update: the value of a set's entry, None to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWrite {
    pub id: SetId,
    pub value: Option<HookSet>,
}

/// The sets as written to the kernel (the mirror the next swap starts
/// from).
#[derive(Debug, Default)]
pub struct DispatchSets {
    sets: BTreeMap<SetId, BTreeSet<u32>>,
    /// The stacks each slot's hook may post, where it may post any.
    stacks: BTreeMap<u32, u8>,
}

/// The sets one swap touches, in each of its states.
#[derive(Debug)]
pub struct Swap {
    before: BTreeMap<SetId, BTreeSet<u32>>,
    grown: BTreeMap<SetId, BTreeSet<u32>>,
    after: BTreeMap<SetId, BTreeSet<u32>>,
}

impl DispatchSets {
    /// Plans taking `old` listings out and putting `new` ones in.
    pub fn plan(&self, old: &[(SetId, u32)], new: &[(SetId, u32)]) -> Swap {
        let mut before: BTreeMap<SetId, BTreeSet<u32>> = BTreeMap::new();
        for (id, _) in old.iter().chain(new) {
            before
                .entry(*id)
                .or_insert_with(|| self.sets.get(id).cloned().unwrap_or_default());
        }
        // A key's every-event entry carries whether the key has gates, so
        // it is rewritten whenever one of its gates is.
        let keys: Vec<HookKey> = before.keys().map(SetId::key).collect();
        for key in keys {
            let id = SetId::Every(key);
            before
                .entry(id)
                .or_insert_with(|| self.sets.get(&id).cloned().unwrap_or_default());
        }
        let mut after = before.clone();
        for (id, slot) in old {
            if let Some(set) = after.get_mut(id) {
                set.remove(slot);
            }
        }
        for (id, slot) in new {
            if let Some(set) = after.get_mut(id) {
                set.insert(*slot);
            }
        }
        let grown = before
            .iter()
            .map(|(id, set)| (*id, set.union(&after[id]).copied().collect()))
            .collect();
        Swap {
            before,
            grown,
            after,
        }
    }

    /// Records the stacks the hook in `slot` may post, for the sets
    /// written from now on (a slot is listed anew when reused).
    pub fn set_stacks(&mut self, slot: u32, stacks: u8) {
        if stacks != 0 {
            self.stacks.insert(slot, stacks);
        } else {
            self.stacks.remove(&slot);
        }
    }

    /// The map updates that take the kernel to `state` (sets of one
    /// swap), gates before the every-event entries that announce them;
    /// the mirror follows.
    pub fn writes(&mut self, state: &BTreeMap<SetId, BTreeSet<u32>>) -> Vec<SetWrite> {
        for (id, set) in state {
            if set.is_empty() {
                self.sets.remove(id);
            } else {
                self.sets.insert(*id, set.clone());
            }
        }
        let mut writes = Vec::new();
        for id in state.keys() {
            if let SetId::Gate(_) = id {
                writes.push(SetWrite {
                    id: *id,
                    value: self.sets.get(id).map(|set| self.encode(set, false)),
                });
            }
        }
        for id in state.keys() {
            if let SetId::Every(key) = id {
                let gated = self.has_gates(*key);
                let value = match self.sets.get(id) {
                    None if !gated => None,
                    set => Some(self.encode(set.unwrap_or(&BTreeSet::new()), gated)),
                };
                writes.push(SetWrite { id: *id, value });
            }
        }
        writes
    }

    fn encode(&self, slots: &BTreeSet<u32>, gated: bool) -> HookSet {
        let mut set = encode(slots, gated);
        set.stacks = slots
            .iter()
            .filter_map(|slot| self.stacks.get(slot))
            .fold(0, |stacks, s| stacks | u32::from(*s));
        set
    }

    fn has_gates(&self, key: HookKey) -> bool {
        let from = SetId::gate(key, 0);
        let to = SetId::gate(key, u32::MAX);
        self.sets.range(from..=to).next().is_some()
    }
}

impl Swap {
    /// The states to write in order: grown (old and new slots), then after.
    pub fn stages(&self) -> [&BTreeMap<SetId, BTreeSet<u32>>; 2] {
        [&self.grown, &self.after]
    }

    /// The state to put back when a stage fails.
    pub fn before(&self) -> &BTreeMap<SetId, BTreeSet<u32>> {
        &self.before
    }
}

fn encode(slots: &BTreeSet<u32>, gated: bool) -> HookSet {
    let mut set = HookSet {
        gated: u32::from(gated),
        ..Default::default()
    };
    // Slots are below MAX_HOOKS (the slot allocator's range).
    for &slot in slots.iter().filter(|s| **s < MAX_HOOKS) {
        let word = slot as usize / 64;
        set.words[word] |= 1 << (slot % 64);
        set.summary |= 1 << word;
    }
    set
}

#[cfg(test)]
mod tests {
    use tetragond_ebpf::HookKey;

    use super::{DispatchSets, SetId, SetWrite};

    const KEY: HookKey = HookKey { site: 1, sub_id: 7 };

    fn slots(write: &SetWrite) -> Vec<u32> {
        let Some(set) = write.value else {
            return vec![];
        };
        (0..tetragond_ebpf::MAX_HOOKS)
            .filter(|s| set.words[*s as usize / 64] & (1 << (s % 64)) != 0)
            .collect()
    }

    fn apply(
        sets: &mut DispatchSets,
        old: &[(SetId, u32)],
        new: &[(SetId, u32)],
    ) -> Vec<Vec<SetWrite>> {
        let swap = sets.plan(old, new);
        swap.stages().map(|stage| sets.writes(stage)).to_vec()
    }

    #[test]
    fn an_edit_is_listed_with_both_versions_before_the_old_one_goes() {
        let mut sets = DispatchSets::default();
        apply(&mut sets, &[], &[(SetId::Every(KEY), 3)]);
        let stages = apply(
            &mut sets,
            &[(SetId::Every(KEY), 3)],
            &[(SetId::Every(KEY), 9)],
        );
        assert_eq!(slots(&stages[0][0]), vec![3, 9]);
        assert_eq!(slots(&stages[1][0]), vec![9]);
    }

    #[test]
    fn a_hook_moving_into_a_gate_runs_from_both_sets_in_between() {
        let mut sets = DispatchSets::default();
        apply(&mut sets, &[], &[(SetId::Every(KEY), 3)]);
        let gate = SetId::gate(KEY, 5);
        let stages = apply(&mut sets, &[(SetId::Every(KEY), 3)], &[(gate, 4)]);
        // Grown: the gate holds 4, the key's set still 3 and says it has gates.
        assert_eq!(stages[0][0].id, gate);
        assert_eq!(slots(&stages[0][0]), vec![4]);
        assert_eq!(stages[0][1].id, SetId::Every(KEY));
        assert_eq!(slots(&stages[0][1]), vec![3]);
        assert_eq!(stages[0][1].value.map(|v| v.gated), Some(1));
        // After: the key's entry stays, empty, to announce its gate.
        assert_eq!(slots(&stages[1][1]), Vec::<u32>::new());
        assert_eq!(stages[1][1].value.map(|v| v.gated), Some(1));
    }

    /// A set says which stacks its hooks may post, so the entry point
    /// takes only those; a set without such hooks takes none.
    #[test]
    fn a_set_carries_the_stacks_its_hooks_post() {
        use tetragond_ebpf::stack;
        let mut sets = DispatchSets::default();
        let other = HookKey { site: 1, sub_id: 8 };
        sets.set_stacks(3, stack::KERNEL);
        sets.set_stacks(4, stack::USER);
        let stages = apply(
            &mut sets,
            &[],
            &[
                (SetId::Every(KEY), 3),
                (SetId::Every(KEY), 4),
                (SetId::Every(other), 5),
            ],
        );
        let stacks = |id: SetId| {
            stages[1]
                .iter()
                .find(|w| w.id == id)
                .and_then(|w| w.value)
                .map(|v| v.stacks)
        };
        assert_eq!(
            stacks(SetId::Every(KEY)),
            Some(u32::from(stack::KERNEL | stack::USER))
        );
        assert_eq!(stacks(SetId::Every(other)), Some(0));
        // The hook posting the user stack gone, only the kernel's is taken.
        let stages = apply(&mut sets, &[(SetId::Every(KEY), 4)], &[]);
        assert_eq!(
            stages[1][0].value.map(|v| v.stacks),
            Some(u32::from(stack::KERNEL))
        );
    }

    #[test]
    fn the_last_gate_gone_clears_the_key() {
        let mut sets = DispatchSets::default();
        let gate = SetId::gate(KEY, 5);
        apply(&mut sets, &[], &[(gate, 4)]);
        let stages = apply(&mut sets, &[(gate, 4)], &[]);
        assert_eq!(
            stages[1],
            vec![
                SetWrite {
                    id: gate,
                    value: None
                },
                SetWrite {
                    id: SetId::Every(KEY),
                    value: None
                },
            ]
        );
    }

    #[test]
    fn a_gate_of_another_key_does_not_mark_this_one() {
        let mut sets = DispatchSets::default();
        let other = HookKey { site: 1, sub_id: 8 };
        apply(&mut sets, &[], &[(SetId::gate(other, 5), 4)]);
        let stages = apply(&mut sets, &[], &[(SetId::Every(KEY), 3)]);
        assert_eq!(stages[1][0].value.map(|v| v.gated), Some(0));
    }

    #[test]
    fn slots_in_the_high_words_are_summarised() {
        let mut sets = DispatchSets::default();
        let stages = apply(
            &mut sets,
            &[],
            &[(SetId::Every(KEY), 4095), (SetId::Every(KEY), 64)],
        );
        let set = stages[1][0].value.expect("written");
        assert_eq!(set.summary, 1 << 63 | 1 << 1);
        assert_eq!(slots(&stages[1][0]), vec![64, 4095]);
    }
}
