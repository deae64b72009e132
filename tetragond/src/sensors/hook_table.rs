//! `HOOKS`, the hook slots the programs look up: a preallocated array, or,
//! where the kernel allocates on demand (`map_flags::SLOT_TABLES`), a hash
//! map keyed by slot holding only the slots in use.
//!
//! A freed slot of the hash map is deleted one dispatch swap later, not at
//! once: a program that read a dispatch list just before the swap that
//! took the slot out may still look it up, and must find the hook it was
//! listed for, as it would in the array.

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use tetragond_ebpf::HookConf;

use super::object::map_err;
use crate::error::SensorError;

const NAME: &str = "HOOKS";

enum Slots {
    Array(Array<MapData, HookConf>),
    Hash(BpfHashMap<MapData, u32, HookConf>),
}

pub struct HookTable {
    slots: Slots,
    /// Slots freed since the last swap (hash map only).
    retired: Vec<u32>,
}

impl HookTable {
    pub fn new(map: Map) -> Result<Self, SensorError> {
        let slots = match map {
            Map::HashMap(_) => Slots::Hash(BpfHashMap::try_from(map).map_err(map_err(NAME))?),
            map => Slots::Array(Array::try_from(map).map_err(map_err(NAME))?),
        };
        Ok(Self {
            slots,
            retired: vec![],
        })
    }

    pub fn write(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError> {
        self.retired.retain(|&s| s != slot);
        match &mut self.slots {
            Slots::Array(a) => a.set(slot, conf, 0),
            Slots::Hash(h) => h.insert(&slot, conf, 0),
        }
        .map_err(map_err(NAME))
    }

    /// `slot` is no longer used: its memory is given back at the next swap.
    pub fn retire(&mut self, slot: u32) {
        if matches!(self.slots, Slots::Hash(_)) && !self.retired.contains(&slot) {
            self.retired.push(slot);
        }
    }

    /// Called before a dispatch swap: deletes the slots retired before it,
    /// which no dispatch list has named since the previous swap.
    pub fn delete_retired(&mut self) {
        let Slots::Hash(h) = &mut self.slots else {
            return;
        };
        for slot in self.retired.drain(..) {
            if let Err(e) = h.remove(&slot) {
                tracing::warn!("deleting freed hook slot {slot}: {e}");
            }
        }
    }
}
