//! Sensors: the kernel programs, where they attach, and the maps policies
//! are compiled into.

mod bpf_syscall;
pub mod dispatch;
mod entries;
mod fmod_ret;
mod functions;
mod hook_table;
pub mod install;
pub mod kernel;
mod map_flags;
pub mod memory;
pub mod mounts;
mod object;
pub mod ops;
pub mod pin;
pub mod ring_size;
pub mod skipped;
mod sock_owners;
mod stubs;
mod uprobes;

pub use kernel::{Kernel, LoadOptions};
