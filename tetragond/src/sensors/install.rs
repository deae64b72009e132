//! Installing a compiled policy into the kernel maps, and removing it.
//!
//! A new version is written to fresh hook slots ([`prepare`]) and only then
//! swapped into the dispatch lists ([`commit`]), one atomic update per list,
//! all lists or none; the old version's slots are freed after. So an edit
//! never leaves a moment without enforcement, and a failed one changes
//! nothing.

use tetragond_ebpf::{ArgSetKey, HookKey, MAX_HOOKS, MAX_POLICIES};

use super::ops::KernelOps;
use crate::{
    compile::{AddrEntry, CompiledPolicy, FunctionTarget, HookMeta, StrEntry, SubstrEntry},
    error::SensorError,
};

/// Kernel slots of one installed policy version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub hooks: Vec<InstalledHook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledHook {
    pub slot: u32,
    pub subsystem: String,
    pub event: String,
    pub keys: Vec<HookKey>,
    pub arg_values: Vec<ArgSetKey>,
    pub binaries: Vec<(u32, String)>,
    pub meta: HookMeta,
    /// Attached as a uprobe (by slot) rather than listed under keys.
    pub uprobe: bool,
    /// The function or LSM hook the hook's program is bound to, once bound.
    pub function: Option<FunctionTarget>,
    pub strings: Vec<StrEntry>,
    pub addrs: Vec<AddrEntry>,
    pub substrings: Vec<SubstrEntry>,
}

impl Installed {
    fn list_entries(&self) -> Vec<(HookKey, u32)> {
        self.hooks
            .iter()
            .flat_map(|h| h.keys.iter().map(move |k| (*k, h.slot)))
            .collect()
    }
}

/// Hands out slots. Freed slots go to the back of the queue, so an event
/// still in flight for a removed hook is unlikely to be blamed on a new one.
#[derive(Debug)]
pub struct SlotAllocator {
    free: std::collections::VecDeque<u32>,
}

impl SlotAllocator {
    pub fn new(capacity: u32) -> Self {
        Self {
            free: (0..capacity).collect(),
        }
    }

    pub fn policies() -> Self {
        Self::new(MAX_POLICIES)
    }

    pub fn hooks() -> Self {
        Self::new(MAX_HOOKS)
    }

    pub fn take(&mut self) -> Option<u32> {
        self.free.pop_front()
    }

    pub fn give_back(&mut self, slot: u32) {
        self.free.push_back(slot);
    }
}

/// A policy version written to fresh hook slots and attached, not yet in
/// any dispatch list: no event reaches it until [`commit`].
#[derive(Debug)]
#[must_use = "a prepared version must be committed or aborted"]
pub struct Prepared {
    installed: Installed,
}

/// First half of installing `new` for `policy_slot`: everything that can
/// fail for lack of room or a missing attach point. On error nothing of
/// `new` stays behind and the running version is untouched.
pub fn prepare(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    policy_slot: u32,
    new: &CompiledPolicy,
) -> Result<Prepared, SensorError> {
    let mut installed = Installed::default();
    if let Err(e) = write_hooks(kernel, hook_slots, policy_slot, new, &mut installed) {
        release(kernel, hook_slots, &installed);
        return Err(e);
    }
    Ok(Prepared { installed })
}

/// Second half: swaps the prepared version into the dispatch lists in place
/// of `old` (if any), then frees `old`. On error the lists are as they were,
/// `old` runs on and the prepared version is released.
pub fn commit(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    prepared: Prepared,
    old: Option<&Installed>,
) -> Result<Installed, SensorError> {
    let old_entries = old.map(Installed::list_entries).unwrap_or_default();
    if let Err(e) = kernel.swap_lists(&old_entries, &prepared.installed.list_entries()) {
        abort(kernel, hook_slots, &prepared);
        return Err(e);
    }
    if let Some(old) = old {
        release(kernel, hook_slots, old);
    }
    Ok(prepared.installed)
}

/// Drops a prepared version that will not be committed.
pub fn abort(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, prepared: &Prepared) {
    release(kernel, hook_slots, &prepared.installed);
}

/// Takes a policy version out of the dispatch lists, then frees its slots.
pub fn remove(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, old: &Installed) {
    if let Err(e) = kernel.swap_lists(&old.list_entries(), &[]) {
        tracing::error!("removing dispatch entries: {e}");
    }
    release(kernel, hook_slots, old);
}

fn write_hooks(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    policy_slot: u32,
    new: &CompiledPolicy,
    installed: &mut Installed,
) -> Result<(), SensorError> {
    for hook in &new.hooks {
        let slot = hook_slots
            .take()
            .ok_or_else(|| SensorError::Full(format!("all {MAX_HOOKS} hook slots in use")))?;
        let mut entry = InstalledHook {
            slot,
            subsystem: hook.subsystem.clone(),
            event: hook.event.clone(),
            keys: vec![],
            arg_values: vec![],
            binaries: vec![],
            meta: hook.meta.clone(),
            uprobe: false,
            function: None,
            strings: vec![],
            addrs: vec![],
            substrings: vec![],
        };
        let mut conf = hook.conf;
        conf.policy_slot = policy_slot;
        let step = (|| {
            kernel.write_hook(slot, &conf)?;
            for &(selector, filter, value) in &hook.arg_values {
                let key = ArgSetKey {
                    hook_slot: slot,
                    selector,
                    filter,
                    _pad: [0; 2],
                    value,
                };
                kernel.add_arg_value(key)?;
                entry.arg_values.push(key);
            }
            for (selector, path) in &hook.binaries {
                kernel.add_binary(slot, *selector, path)?;
                entry.binaries.push((*selector, path.clone()));
            }
            for s in &hook.strings {
                kernel.add_string(slot, s)?;
                entry.strings.push(s.clone());
            }
            for a in &hook.addrs {
                kernel.add_addr(slot, a)?;
                entry.addrs.push(a.clone());
            }
            for v in &hook.substrings {
                kernel.add_substring(slot, v)?;
                entry.substrings.push(v.clone());
            }
            match (&hook.uprobe, &hook.function) {
                (Some(target), _) => kernel
                    .attach_uprobe(&target.binary, target.location.clone(), target.ret, slot)
                    .map(|()| None),
                (None, Some(target)) => {
                    let site = kernel.attach_function(target)?;
                    entry.function = Some(target.clone());
                    Ok(Some(site))
                }
                (None, None) => kernel.attach(&hook.subsystem, &hook.event).map(Some),
            }
        })();
        // Record even a half-written hook, so release() undoes what was done.
        match step {
            Ok(Some(site)) => entry.keys = hook.keys(site),
            Ok(None) => entry.uprobe = true,
            Err(_) => {}
        }
        installed.hooks.push(entry);
        if let Err(e) = step.map(|_| ()) {
            // Not attached: release() must not detach it.
            if let Some(last) = installed.hooks.last_mut() {
                last.subsystem.clear();
            }
            return Err(e);
        }
    }
    Ok(())
}

fn release(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, installed: &Installed) {
    for hook in &installed.hooks {
        for key in &hook.arg_values {
            kernel.remove_arg_value(key);
        }
        for (selector, path) in &hook.binaries {
            kernel.remove_binary(hook.slot, *selector, path);
        }
        for s in &hook.strings {
            kernel.remove_string(hook.slot, s);
        }
        for a in &hook.addrs {
            kernel.remove_addr(hook.slot, a);
        }
        for v in &hook.substrings {
            kernel.remove_substring(hook.slot, v);
        }
        if hook.uprobe {
            kernel.detach_uprobe(hook.slot);
        } else if let Some(target) = &hook.function {
            kernel.detach_function(target);
        } else if !hook.subsystem.is_empty() {
            kernel.detach(&hook.subsystem, &hook.event);
        }
        hook_slots.give_back(hook.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::SlotAllocator;

    #[test]
    fn freed_slots_are_reused_last() {
        let mut a = SlotAllocator::new(3);
        let (x, y) = (a.take(), a.take());
        assert_eq!((x, y), (Some(0), Some(1)));
        a.give_back(0);
        assert_eq!(a.take(), Some(2));
        assert_eq!(a.take(), Some(0));
        assert_eq!(a.take(), None);
    }
}
