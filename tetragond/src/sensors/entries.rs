//! The lookup maps a hook's selectors read, and the one place a compiled
//! [`MapEntry`] is written to its map and removed from it. A new kind of
//! entry is a map here and an arm in [`EntryMaps::add`] and
//! [`EntryMaps::remove`].

use std::collections::HashMap;

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        HashMap as BpfHashMap, MapData,
    },
    Ebpf,
};
use tetragond_ebpf::{
    AddrTrieData, ArgSetKey, BinarySetKey, ExePath, RegOverride, RegsKey, StrTrieData, SubstrKey,
    SubstrValue, PATH_LEN, STR_TRIE_HEADER_BITS,
};

use super::object::{exe_path, map_err, take};
use crate::{compile::MapEntry, error::SensorError};

/// The maps [`MapEntry`] values go to, taken out of the loaded object.
pub struct EntryMaps {
    arg_sets: BpfHashMap<MapData, ArgSetKey, u8>,
    binary_sets: BpfHashMap<MapData, BinarySetKey, u8>,
    binary_ids: BpfHashMap<MapData, ExePath, u32>,
    str_trie: LpmTrie<MapData, StrTrieData, u8>,
    addr_trie: LpmTrie<MapData, AddrTrieData, u8>,
    substrings: BpfHashMap<MapData, SubstrKey, SubstrValue>,
    uprobe_regs: BpfHashMap<MapData, RegsKey, RegOverride>,
    /// Binary path -> (id, users): hooks share a path's id.
    binaries: HashMap<String, (u32, usize)>,
    next_binary_id: u32,
}

impl EntryMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, SensorError> {
        Ok(EntryMaps {
            arg_sets: take!(ebpf, BpfHashMap, "ARG_SETS"),
            binary_sets: take!(ebpf, BpfHashMap, "BINARY_SETS"),
            binary_ids: take!(ebpf, BpfHashMap, "BINARY_IDS"),
            str_trie: take!(ebpf, LpmTrie, "STR_TRIE"),
            addr_trie: take!(ebpf, LpmTrie, "ADDR_TRIE"),
            substrings: take!(ebpf, BpfHashMap, "SUBSTRINGS"),
            uprobe_regs: take!(ebpf, BpfHashMap, "UPROBE_REGS"),
            binaries: HashMap::new(),
            next_binary_id: 1,
        })
    }

    /// Writes `entry` of the hook in `hook_slot` to its map.
    pub fn add(&mut self, hook_slot: u32, entry: &MapEntry) -> Result<(), SensorError> {
        match entry {
            MapEntry::ArgValue {
                selector,
                filter,
                value,
            } => self
                .arg_sets
                .insert(&arg_key(hook_slot, *selector, *filter, *value), &1, 0)
                .map_err(map_err("ARG_SETS")),
            MapEntry::Binary { selector, path } => self.add_binary(hook_slot, *selector, path),
            MapEntry::Str {
                selector,
                filter,
                bytes,
            } => self
                .str_trie
                .insert(&str_key(hook_slot, *selector, *filter, bytes), &1, 0)
                .map_err(map_err("STR_TRIE")),
            MapEntry::Addr {
                selector,
                filter,
                prefix,
                addr,
            } => self
                .addr_trie
                .insert(
                    &addr_key(hook_slot, *selector, *filter, *prefix, *addr),
                    &1,
                    0,
                )
                .map_err(map_err("ADDR_TRIE")),
            MapEntry::Substr {
                selector,
                filter,
                index,
                value,
            } => self
                .substrings
                .insert(&substr_key(hook_slot, *selector, *filter, *index), value, 0)
                .map_err(map_err("SUBSTRINGS")),
            MapEntry::Regs { selector, regs } => self
                .uprobe_regs
                .insert(&regs_key(hook_slot, *selector), regs, 0)
                .map_err(map_err("UPROBE_REGS")),
        }
    }

    /// Removes an entry [`EntryMaps::add`] wrote. Nothing to report on
    /// failure: the entry is gone either way, or was never there.
    pub fn remove(&mut self, hook_slot: u32, entry: &MapEntry) {
        match entry {
            MapEntry::ArgValue {
                selector,
                filter,
                value,
            } => {
                let _ = self
                    .arg_sets
                    .remove(&arg_key(hook_slot, *selector, *filter, *value));
            }
            MapEntry::Binary { selector, path } => self.remove_binary(hook_slot, *selector, path),
            MapEntry::Str {
                selector,
                filter,
                bytes,
            } => {
                let _ = self
                    .str_trie
                    .remove(&str_key(hook_slot, *selector, *filter, bytes));
            }
            MapEntry::Addr {
                selector,
                filter,
                prefix,
                addr,
            } => {
                let _ = self
                    .addr_trie
                    .remove(&addr_key(hook_slot, *selector, *filter, *prefix, *addr));
            }
            MapEntry::Substr {
                selector,
                filter,
                index,
                ..
            } => {
                let _ = self
                    .substrings
                    .remove(&substr_key(hook_slot, *selector, *filter, *index));
            }
            MapEntry::Regs { selector, .. } => {
                let _ = self.uprobe_regs.remove(&regs_key(hook_slot, *selector));
            }
        }
    }

    /// Adds `path` to a selector's matchBinaries set.
    fn add_binary(&mut self, hook_slot: u32, selector: u32, path: &str) -> Result<(), SensorError> {
        let binary_id = self.binary_id(path)?;
        self.binary_sets
            .insert(
                &BinarySetKey {
                    hook_slot,
                    selector,
                    binary_id,
                },
                &1,
                0,
            )
            .map_err(map_err("BINARY_SETS"))
    }

    fn remove_binary(&mut self, hook_slot: u32, selector: u32, path: &str) {
        let Some(&(binary_id, users)) = self.binaries.get(path) else {
            return;
        };
        let _ = self.binary_sets.remove(&BinarySetKey {
            hook_slot,
            selector,
            binary_id,
        });
        if users <= 1 {
            self.binaries.remove(path);
            if let Some(key) = exe_path(path) {
                let _ = self.binary_ids.remove(&key);
            }
        } else {
            self.binaries
                .insert(path.to_string(), (binary_id, users - 1));
        }
    }

    /// The id `path` has while a hook lists it.
    pub fn binary_id_of(&self, path: &str) -> Option<u32> {
        self.binaries.get(path).map(|(id, _)| *id)
    }

    fn binary_id(&mut self, path: &str) -> Result<u32, SensorError> {
        if let Some((id, users)) = self.binaries.get_mut(path) {
            *users += 1;
            return Ok(*id);
        }
        let key = exe_path(path).ok_or_else(|| {
            SensorError::Full(format!(
                "binary path longer than {} bytes: {path}",
                PATH_LEN - 1
            ))
        })?;
        let id = self.next_binary_id;
        self.binary_ids
            .insert(&key, &id, 0)
            .map_err(map_err("BINARY_IDS"))?;
        self.next_binary_id += 1;
        self.binaries.insert(path.to_string(), (id, 1));
        Ok(id)
    }
}

fn arg_key(hook_slot: u32, selector: u8, filter: u8, value: u64) -> ArgSetKey {
    ArgSetKey {
        hook_slot,
        selector,
        filter,
        _pad: [0; 2],
        value,
    }
}

fn str_key(hook_slot: u32, selector: u8, filter: u8, bytes: &[u8]) -> Key<StrTrieData> {
    let mut data = StrTrieData {
        hook_slot,
        selector,
        filter,
        ..Default::default()
    };
    let n = bytes.len().min(data.bytes.len());
    data.bytes[..n].copy_from_slice(&bytes[..n]);
    Key::new(STR_TRIE_HEADER_BITS + 8 * n as u32, data)
}

fn substr_key(hook_slot: u32, selector: u8, filter: u8, index: u8) -> SubstrKey {
    SubstrKey {
        hook_slot,
        selector,
        filter,
        index,
        _pad: 0,
    }
}

fn regs_key(hook_slot: u32, selector: u8) -> RegsKey {
    RegsKey {
        hook_slot,
        selector: u32::from(selector),
    }
}

fn addr_key(
    hook_slot: u32,
    selector: u8,
    filter: u8,
    prefix: u8,
    addr: [u8; 16],
) -> Key<AddrTrieData> {
    Key::new(
        STR_TRIE_HEADER_BITS + u32::from(prefix),
        AddrTrieData {
            hook_slot,
            selector,
            filter,
            _pad: [0; 2],
            addr,
        },
    )
}
