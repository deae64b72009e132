//! tetragond: Tetragon's TracingPolicy enforced by eBPF, as a plain service.
//!
//! The modules follow the domain: the policy language (`policy`), what the
//! running kernel offers (`kernel_info`), the compilation of a policy into
//! kernel maps (`compile`), the kernel programs and their attachment
//! (`sensors`), the set of loaded policies (`store`), the policy
//! folder (`watcher`), the control API (`api`, `dbus`), events (`events`,
//! `json`, `process`, `export`, `metrics`) and the CLI.

pub mod api;
pub mod atomic_file;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod compile;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod dbus_limits;
pub mod dbus_policies;
pub mod error;
pub mod event_args;
pub mod events;
pub mod export;
pub mod json;
pub mod kernel_info;
pub mod loader;
pub mod metrics;
pub mod namespaces;
pub mod notify;
pub mod outbound;
pub mod policy;
pub mod process;
pub mod runtime_state;
pub mod sensors;
pub mod store;
pub mod syscalls;
pub mod unit_job;
pub mod usdt;
pub mod watcher;
