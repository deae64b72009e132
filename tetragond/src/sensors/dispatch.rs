//! Which hook slots an event runs: the sets behind `HOOK_LISTS`,
//! `BINARY_GATES` and `PREFIX_GATES` (see [`HookSet`]), and the order in
//! which a change to them reaches the kernel.
//!
//! A swap is made before it breaks: every set it touches first grows to
//! hold the old and the new slots, then shrinks to the new ones. Each map
//! update is atomic, so an event sees the old version, both, or the new
//! one, never neither, even when a hook moves from one set to another.

use std::collections::{BTreeMap, BTreeSet};

use tetragond_ebpf::{gate, GateKey, HookKey, HookSet, MAX_HOOKS};

use crate::compile::PrefixReader;

/// Where a hook slot is dispatched from: the set of `key` that runs for
/// every event, or one of its gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub key: HookKey,
    pub gate: ListingGate,
    pub slot: u32,
    /// The stacks the hook may post (see `HookSet::stacks`).
    pub stacks: u8,
}

/// The gate a listing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingGate {
    None,
    /// Run only when the executable is this one.
    Binary(String),
    /// Run only when the argument `reader` reads starts with `bytes`.
    Prefix {
        reader: PrefixReader,
        bytes: Vec<u8>,
    },
}

/// A prefix gate: the hooks a key runs when the argument its gates read
/// starts with `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrefixId {
    pub key: HookKey,
    pub bytes: Vec<u8>,
}

/// A dispatch set: the hooks a key runs for every event, or those it runs
/// only when the executable is `binary_id`, or only for an argument with
/// a prefix. `PrefixAll` is not kept: it is written as the union of the
/// key's prefix gates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetId {
    Every(HookKey),
    Gate(GateKey),
    Prefix(PrefixId),
    PrefixAll(HookKey),
}

impl SetId {
    pub fn gate(key: HookKey, binary_id: u32) -> Self {
        SetId::Gate(GateKey {
            site: key.site,
            sub_id: key.sub_id,
            binary_id,
        })
    }

    pub fn prefix(key: HookKey, bytes: &[u8]) -> Self {
        SetId::Prefix(PrefixId {
            key,
            bytes: bytes.to_vec(),
        })
    }

    fn key(&self) -> HookKey {
        match self {
            SetId::Every(key) | SetId::PrefixAll(key) => *key,
            SetId::Gate(g) => HookKey {
                site: g.site,
                sub_id: g.sub_id,
            },
            SetId::Prefix(p) => p.key,
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
    /// How each slot's hook reads its prefix gate's argument, where it
    /// has one.
    readers: BTreeMap<u32, PrefixReader>,
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
                .entry(id.clone())
                .or_insert_with(|| self.sets.get(id).cloned().unwrap_or_default());
        }
        // A key's every-event entry carries whether the key has gates, so
        // it is rewritten whenever one of its gates is.
        let keys: Vec<HookKey> = before.keys().map(SetId::key).collect();
        for key in keys {
            let id = SetId::Every(key);
            before
                .entry(id.clone())
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
            .map(|(id, set)| (id.clone(), set.union(&after[id]).copied().collect()))
            .collect();
        Swap {
            before,
            grown,
            after,
        }
    }

    /// Records what the hook in `slot` needs of the sets it is listed in
    /// (the stacks it may post, how its prefix gate is read), for the sets
    /// written from now on (a slot is listed anew when reused).
    pub fn set_slot(&mut self, slot: u32, stacks: u8, reader: Option<PrefixReader>) {
        if stacks != 0 {
            self.stacks.insert(slot, stacks);
        } else {
            self.stacks.remove(&slot);
        }
        match reader {
            Some(reader) => self.readers.insert(slot, reader),
            None => self.readers.remove(&slot),
        };
    }

    /// How the prefix gates of `key` read their argument: as every hook in
    /// them does (a hook that reads it otherwise is listed for every event
    /// instead, see [`Self::joins_prefix_gates`]).
    pub fn prefix_reader(&self, key: HookKey) -> Option<PrefixReader> {
        self.prefix_representative(key).map(|(_, reader)| reader)
    }

    /// Whether a hook reading its gate's argument with `reader` can join
    /// the prefix gates of `key`: the key has none, or they read alike.
    /// `adopted` holds the readers this swap's earlier listings took.
    pub fn joins_prefix_gates(
        &self,
        key: HookKey,
        reader: &PrefixReader,
        adopted: &mut BTreeMap<HookKey, PrefixReader>,
    ) -> bool {
        let current = adopted.get(&key).copied().or(self.prefix_reader(key));
        match current {
            Some(current) => current == *reader,
            None => {
                adopted.insert(key, *reader);
                true
            }
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
                self.sets.insert(id.clone(), set.clone());
            }
        }
        let mut writes = Vec::new();
        for id in state.keys() {
            if let SetId::Gate(_) = id {
                writes.push(SetWrite {
                    id: id.clone(),
                    value: self.sets.get(id).map(|set| self.encode(set, 0)),
                });
            }
        }
        writes.extend(self.prefix_writes(state));
        for id in state.keys() {
            if let SetId::Every(key) = id {
                let gates = self.gates(*key);
                let value = match self.sets.get(id) {
                    None if gates == 0 => None,
                    set => {
                        let mut value = self.encode(set.unwrap_or(&BTreeSet::new()), gates);
                        if let Some((slot, reader)) = self.prefix_representative(*key) {
                            value.prefix_hook = slot;
                            value.prefix_arg = u32::from(reader.arg);
                        }
                        Some(value)
                    }
                };
                writes.push(SetWrite {
                    id: id.clone(),
                    value,
                });
            }
        }
        writes
    }

    /// The prefix gate entries a change to `state`'s prefix sets rewrites:
    /// each entry holds its own hooks and those of every shorter prefix of
    /// it (the kernel finds the longest only), so a change reaches the
    /// entries that extend it too; and each key's every-prefix entry.
    fn prefix_writes(&self, state: &BTreeMap<SetId, BTreeSet<u32>>) -> Vec<SetWrite> {
        let mut changed: BTreeSet<PrefixId> = BTreeSet::new();
        let mut keys: BTreeSet<HookKey> = BTreeSet::new();
        for id in state.keys() {
            let SetId::Prefix(p) = id else { continue };
            keys.insert(p.key);
            changed.insert(p.clone());
            for (longer, _) in self.prefix_sets(p.key) {
                if longer.bytes.starts_with(&p.bytes) {
                    changed.insert(longer.clone());
                }
            }
        }
        let mut writes: Vec<SetWrite> = changed
            .into_iter()
            .map(|p| {
                let value = self.sets.contains_key(&SetId::Prefix(p.clone())).then(|| {
                    let slots = self
                        .prefix_sets(p.key)
                        .filter(|(shorter, _)| p.bytes.starts_with(&shorter.bytes))
                        .flat_map(|(_, slots)| slots.iter().copied())
                        .collect();
                    self.encode(&slots, 0)
                });
                SetWrite {
                    id: SetId::Prefix(p),
                    value,
                }
            })
            .collect();
        for key in keys {
            let all: BTreeSet<u32> = self
                .prefix_sets(key)
                .flat_map(|(_, slots)| slots.iter().copied())
                .collect();
            writes.push(SetWrite {
                id: SetId::PrefixAll(key),
                value: (!all.is_empty()).then(|| self.encode(&all, 0)),
            });
        }
        writes
    }

    fn encode(&self, slots: &BTreeSet<u32>, gates: u32) -> HookSet {
        let mut set = encode(slots, gates);
        set.stacks = slots
            .iter()
            .filter_map(|slot| self.stacks.get(slot))
            .fold(0, |stacks, s| stacks | u32::from(*s));
        set
    }

    /// The key's gates, as `HookSet::gated` bits.
    fn gates(&self, key: HookKey) -> u32 {
        let from = SetId::gate(key, 0);
        let to = SetId::gate(key, u32::MAX);
        let binary = self.sets.range(from..=to).next().is_some();
        let prefix = self.prefix_sets(key).next().is_some();
        let bit = |has: bool, bit: u32| if has { bit } else { 0 };
        bit(binary, gate::BINARY) | bit(prefix, gate::PREFIX)
    }

    fn prefix_sets(&self, key: HookKey) -> impl Iterator<Item = (&PrefixId, &BTreeSet<u32>)> {
        let from = SetId::prefix(key, &[]);
        self.sets
            .range(from..)
            .map_while(move |(id, slots)| match id {
                SetId::Prefix(p) if p.key == key => Some((p, slots)),
                _ => None,
            })
    }

    /// A hook of the key's prefix gates, whose argument the kernel reads
    /// for all of them.
    fn prefix_representative(&self, key: HookKey) -> Option<(u32, PrefixReader)> {
        self.prefix_sets(key)
            .flat_map(|(_, slots)| slots)
            .find_map(|slot| Some((*slot, *self.readers.get(slot)?)))
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

fn encode(slots: &BTreeSet<u32>, gates: u32) -> HookSet {
    let mut set = HookSet {
        gated: gates,
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
        let stages = apply(&mut sets, &[(SetId::Every(KEY), 3)], &[(gate.clone(), 4)]);
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
        sets.set_slot(3, stack::KERNEL, None);
        sets.set_slot(4, stack::USER, None);
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
        apply(&mut sets, &[], &[(gate.clone(), 4)]);
        let stages = apply(&mut sets, &[(gate.clone(), 4)], &[]);
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

    fn reader(arg: u8) -> crate::compile::PrefixReader {
        crate::compile::PrefixReader {
            arg,
            spec: tetragond_ebpf::ArgSpec {
                kind: tetragond_ebpf::arg_kind::STRING,
                size: 8,
                ..Default::default()
            },
        }
    }

    fn written(stage: &[SetWrite], id: &SetId) -> Option<Vec<u32>> {
        stage.iter().find(|w| w.id == *id).map(slots)
    }

    /// The kernel finds the longest prefix only, so an entry holds the
    /// hooks of every shorter prefix of it too, and a change to a short
    /// prefix reaches the longer entries.
    #[test]
    fn a_prefix_entry_holds_the_hooks_of_its_shorter_prefixes() {
        let mut sets = DispatchSets::default();
        for slot in [3, 4, 5] {
            sets.set_slot(slot, 0, Some(reader(1)));
        }
        let tmp = SetId::prefix(KEY, b"/tmp/");
        let tmp_x = SetId::prefix(KEY, b"/tmp/x/");
        let etc = SetId::prefix(KEY, b"/etc/");
        let stages = apply(&mut sets, &[], &[(tmp_x.clone(), 4), (etc.clone(), 5)]);
        assert_eq!(written(&stages[1], &tmp_x), Some(vec![4]));
        let stages = apply(&mut sets, &[], &[(tmp.clone(), 3)]);
        assert_eq!(written(&stages[1], &tmp), Some(vec![3]));
        assert_eq!(written(&stages[1], &tmp_x), Some(vec![3, 4]), "rewritten");
        assert_eq!(written(&stages[1], &etc), None, "not a longer prefix");
        assert_eq!(
            written(&stages[1], &SetId::PrefixAll(KEY)),
            Some(vec![3, 4, 5])
        );
        // The key's entry announces the gates and names a hook reading
        // their argument.
        let every = stages[1]
            .iter()
            .find(|w| w.id == SetId::Every(KEY))
            .and_then(|w| w.value)
            .expect("written");
        assert_eq!(every.gated, tetragond_ebpf::gate::PREFIX);
        assert!([3, 4, 5].contains(&every.prefix_hook));
        assert_eq!(every.prefix_arg, 1);
        // The short prefix gone, the longer entry keeps its own hook only.
        let stages = apply(&mut sets, &[(tmp.clone(), 3)], &[]);
        assert_eq!(written(&stages[1], &tmp), Some(vec![]));
        assert_eq!(
            stages[1].iter().find(|w| w.id == tmp).map(|w| w.value),
            Some(None)
        );
        assert_eq!(written(&stages[1], &tmp_x), Some(vec![4]));
    }

    /// The kernel reads one argument for all of a key's prefix gates: a
    /// hook that reads another stays listed for every event.
    #[test]
    fn a_hook_reading_another_argument_does_not_join_the_gates() {
        let mut sets = DispatchSets::default();
        sets.set_slot(3, 0, Some(reader(1)));
        apply(&mut sets, &[], &[(SetId::prefix(KEY, b"/a"), 3)]);
        let mut adopted = std::collections::BTreeMap::new();
        assert!(sets.joins_prefix_gates(KEY, &reader(1), &mut adopted));
        assert!(!sets.joins_prefix_gates(KEY, &reader(0), &mut adopted));
        let other = HookKey { site: 1, sub_id: 8 };
        assert!(sets.joins_prefix_gates(other, &reader(0), &mut adopted));
        assert!(
            !sets.joins_prefix_gates(other, &reader(1), &mut adopted),
            "the first listing of a swap sets the key's reader"
        );
    }
}
