//! The kernel as the policy store sees it: the map entries a policy version
//! is written to and the attachments it needs. [`Kernel`] is the real one;
//! the store's unit tests run against a recording fake.

use tetragond_ebpf::{HookConf, PolicyCounters};

use super::{dispatch::Listing, Kernel};
use crate::{
    compile::{Attach, MapEntry},
    error::SensorError,
};

/// What installing, switching and removing policy versions needs.
pub trait KernelOps {
    fn write_hook(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError>;
    /// `slot`, out of every dispatch list, holds no hook any more.
    fn free_hook(&mut self, slot: u32);
    /// Writes one of the map entries of the hook in `hook_slot`.
    fn add_entry(&mut self, hook_slot: u32, entry: &MapEntry) -> Result<(), SensorError>;
    fn remove_entry(&mut self, hook_slot: u32, entry: &MapEntry);
    /// Attaches the hook's program; returns the site it is listed under,
    /// None when it is not listed (uprobes).
    fn attach(&mut self, attach: &Attach, hook_slot: u32) -> Result<Option<u32>, SensorError>;
    fn detach(&mut self, attach: &Attach, hook_slot: u32);
    /// All dispatch sets or none.
    fn swap_lists(&mut self, old: &[Listing], new: &[Listing]) -> Result<(), SensorError>;
    fn set_mode(&mut self, policy_slot: u32, mode: u32) -> Result<(), SensorError>;
    fn counters(&self, policy_slot: u32) -> Result<PolicyCounters, SensorError>;
    fn reset_counters(&mut self, policy_slot: u32) -> Result<(), SensorError>;
}

/// Forwards to the methods of the same names (`attach_hook`, `detach_hook`
/// for attaching).
impl KernelOps for Kernel {
    fn write_hook(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError> {
        Kernel::write_hook(self, slot, conf)
    }
    fn free_hook(&mut self, slot: u32) {
        Kernel::free_hook(self, slot)
    }
    fn add_entry(&mut self, hook_slot: u32, entry: &MapEntry) -> Result<(), SensorError> {
        Kernel::add_entry(self, hook_slot, entry)
    }
    fn remove_entry(&mut self, hook_slot: u32, entry: &MapEntry) {
        Kernel::remove_entry(self, hook_slot, entry);
    }
    fn attach(&mut self, attach: &Attach, hook_slot: u32) -> Result<Option<u32>, SensorError> {
        Kernel::attach_hook(self, attach, hook_slot)
    }
    fn detach(&mut self, attach: &Attach, hook_slot: u32) {
        Kernel::detach_hook(self, attach, hook_slot);
    }
    fn swap_lists(&mut self, old: &[Listing], new: &[Listing]) -> Result<(), SensorError> {
        Kernel::swap_lists(self, old, new)
    }
    fn set_mode(&mut self, policy_slot: u32, mode: u32) -> Result<(), SensorError> {
        Kernel::set_mode(self, policy_slot, mode)
    }
    fn counters(&self, policy_slot: u32) -> Result<PolicyCounters, SensorError> {
        Kernel::counters(self, policy_slot)
    }
    fn reset_counters(&mut self, policy_slot: u32) -> Result<(), SensorError> {
        Kernel::reset_counters(self, policy_slot)
    }
}
