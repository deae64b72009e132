//! What the running kernel is and offers, read without loading anything:
//! tracepoint formats from tracefs, struct layouts from BTF, the feature
//! probe and the hook mechanisms it yields.
//!
//! The lowest layer of the kernel side: compiling reads these facts to
//! choose mechanisms and offsets, and the sensors read them to load and
//! attach, so this module imports neither.

pub mod btf;
pub mod caps;
pub mod kallsyms;
pub mod offsets;
pub mod probe;
pub mod records;
pub mod tracefs;

pub use caps::{HookCaps, KernelFunctions};
