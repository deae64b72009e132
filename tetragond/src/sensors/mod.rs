//! Sensors: the kernel programs, where they attach, and the maps policies
//! are compiled into.

pub mod btf;
mod fmod_ret;
mod functions;
pub mod install;
pub mod kernel;
pub mod memory;
pub mod mounts;
mod offsets;
pub mod ops;
pub mod pin;
pub mod probe;
pub mod tracefs;

pub use kernel::Kernel;
