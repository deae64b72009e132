//! The kernel as the policy store sees it: the map entries a policy version
//! is written to and the attachments it needs. [`Kernel`] is the real one;
//! the store's unit tests run against a recording fake.

use tetragond_ebpf::{ArgSetKey, HookConf, HookKey, PolicyCounters};

use super::Kernel;
use crate::{
    compile::{AddrEntry, FunctionTarget, StrEntry, SubstrEntry, UprobeLocation},
    error::SensorError,
};

/// What installing, switching and removing policy versions needs.
pub trait KernelOps {
    fn write_hook(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError>;
    fn add_arg_value(&mut self, key: ArgSetKey) -> Result<(), SensorError>;
    fn remove_arg_value(&mut self, key: &ArgSetKey);
    fn add_binary(&mut self, hook_slot: u32, selector: u32, path: &str) -> Result<(), SensorError>;
    fn remove_binary(&mut self, hook_slot: u32, selector: u32, path: &str);
    fn add_string(&mut self, hook_slot: u32, entry: &StrEntry) -> Result<(), SensorError>;
    fn remove_string(&mut self, hook_slot: u32, entry: &StrEntry);
    fn add_addr(&mut self, hook_slot: u32, entry: &AddrEntry) -> Result<(), SensorError>;
    fn remove_addr(&mut self, hook_slot: u32, entry: &AddrEntry);
    fn add_substring(&mut self, hook_slot: u32, entry: &SubstrEntry) -> Result<(), SensorError>;
    fn remove_substring(&mut self, hook_slot: u32, entry: &SubstrEntry);
    /// Attaches the tracepoint's entry point (shared); returns its site.
    fn attach(&mut self, subsystem: &str, event: &str) -> Result<u32, SensorError>;
    fn detach(&mut self, subsystem: &str, event: &str);
    fn attach_uprobe(
        &mut self,
        binary: &str,
        location: UprobeLocation,
        ret: bool,
        hook_slot: u32,
    ) -> Result<(), SensorError>;
    fn detach_uprobe(&mut self, hook_slot: u32);
    /// Binds a program to a kernel function or LSM hook; returns its site.
    fn attach_function(&mut self, target: &FunctionTarget) -> Result<u32, SensorError>;
    fn detach_function(&mut self, target: &FunctionTarget);
    /// All dispatch lists or none.
    fn swap_lists(
        &mut self,
        old: &[(HookKey, u32)],
        new: &[(HookKey, u32)],
    ) -> Result<(), SensorError>;
    fn set_mode(&mut self, policy_slot: u32, mode: u32) -> Result<(), SensorError>;
    fn counters(&self, policy_slot: u32) -> Result<PolicyCounters, SensorError>;
    fn reset_counters(&mut self, policy_slot: u32) -> Result<(), SensorError>;
}

/// Forwards to the methods of the same names.
impl KernelOps for Kernel {
    fn write_hook(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError> {
        Kernel::write_hook(self, slot, conf)
    }
    fn add_arg_value(&mut self, key: ArgSetKey) -> Result<(), SensorError> {
        Kernel::add_arg_value(self, key)
    }
    fn remove_arg_value(&mut self, key: &ArgSetKey) {
        Kernel::remove_arg_value(self, key);
    }
    fn add_binary(&mut self, hook_slot: u32, selector: u32, path: &str) -> Result<(), SensorError> {
        Kernel::add_binary(self, hook_slot, selector, path)
    }
    fn remove_binary(&mut self, hook_slot: u32, selector: u32, path: &str) {
        Kernel::remove_binary(self, hook_slot, selector, path);
    }
    fn add_string(&mut self, hook_slot: u32, entry: &StrEntry) -> Result<(), SensorError> {
        Kernel::add_string(self, hook_slot, entry)
    }
    fn remove_string(&mut self, hook_slot: u32, entry: &StrEntry) {
        Kernel::remove_string(self, hook_slot, entry);
    }
    fn add_addr(&mut self, hook_slot: u32, entry: &AddrEntry) -> Result<(), SensorError> {
        Kernel::add_addr(self, hook_slot, entry)
    }
    fn remove_addr(&mut self, hook_slot: u32, entry: &AddrEntry) {
        Kernel::remove_addr(self, hook_slot, entry);
    }
    fn add_substring(&mut self, hook_slot: u32, entry: &SubstrEntry) -> Result<(), SensorError> {
        Kernel::add_substring(self, hook_slot, entry)
    }
    fn remove_substring(&mut self, hook_slot: u32, entry: &SubstrEntry) {
        Kernel::remove_substring(self, hook_slot, entry);
    }
    fn attach(&mut self, subsystem: &str, event: &str) -> Result<u32, SensorError> {
        Kernel::attach(self, subsystem, event)
    }
    fn detach(&mut self, subsystem: &str, event: &str) {
        Kernel::detach(self, subsystem, event);
    }
    fn attach_uprobe(
        &mut self,
        binary: &str,
        location: UprobeLocation,
        ret: bool,
        hook_slot: u32,
    ) -> Result<(), SensorError> {
        Kernel::attach_uprobe(self, binary, location, ret, hook_slot)
    }
    fn detach_uprobe(&mut self, hook_slot: u32) {
        Kernel::detach_uprobe(self, hook_slot);
    }
    fn attach_function(&mut self, target: &FunctionTarget) -> Result<u32, SensorError> {
        Kernel::attach_function(self, target)
    }
    fn detach_function(&mut self, target: &FunctionTarget) {
        Kernel::detach_function(self, target);
    }
    fn swap_lists(
        &mut self,
        old: &[(HookKey, u32)],
        new: &[(HookKey, u32)],
    ) -> Result<(), SensorError> {
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
