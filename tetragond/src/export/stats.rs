//! Counters of what the exporter did, shared (lock-free) with the metrics
//! server, the D-Bus Events object and the main loop.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::events::kind;

/// Why an event did not reach the events file. Every drop has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The kernel's ring buffer was full (`LOSSES`, summed over CPUs).
    RingBuffer,
    /// Exec/exit records lost the same way, or dropped by the reader when
    /// the daemon was far behind: later events of those processes carry
    /// less context (read from /proc instead).
    ProcessRingBuffer,
    /// Pieces of `maxData` buffers lost the same way: their events carry
    /// the buffer up to the first piece lost.
    DataRingBuffer,
    /// IMA hashes lost the same way: their events are written without
    /// `ima_hash` once their wait ends.
    ImaRingBuffer,
    /// Runs of the kernel programs that found every scratch slot of their
    /// CPU held by runs preempted or interrupted there (`SCRATCH_SLOTS`),
    /// and did not run: their events (and actions) were not taken.
    ScratchBusy,
    /// Runs of the kernel programs the kernel itself skipped, finding the
    /// program running on that CPU already (`recursion_misses`, Linux
    /// 5.12; see `sensors::skipped`): their events and actions were not
    /// taken.
    KernelSkipped,
    /// The global `rate_limit_per_minute`.
    RateLimit,
    /// A policy's `policy_rate_limit_per_minute`.
    PolicyRateLimit,
    /// The events file could not be written.
    WriteError,
    /// The kernel posted for a hook slot that has served another hook
    /// since (an unloaded policy's hooks are described until their slots
    /// are used again, which the allocator puts off as long as it can).
    UnknownPolicy,
    /// The daemon was behind and the event's process had more than its
    /// share waiting: dropped by the ring buffer reader so that other
    /// processes' events still get through (see `ring`).
    Backlog,
    /// Identical events a Post action's `rateLimit` kept in the kernel
    /// (the policy's `nratelimited`), reported here so the stream says
    /// how many it did not carry.
    PostRateLimit,
    /// `process_loader` events whose file's build ID could not be read as
    /// fast as files were mapped (a file that is slow to open, such as one
    /// on a FUSE mount, holds the reader): more than `loader::QUEUE` waited.
    LoaderBacklog,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::RingBuffer,
        DropReason::ProcessRingBuffer,
        DropReason::DataRingBuffer,
        DropReason::ImaRingBuffer,
        DropReason::ScratchBusy,
        DropReason::KernelSkipped,
        DropReason::RateLimit,
        DropReason::PolicyRateLimit,
        DropReason::WriteError,
        DropReason::UnknownPolicy,
        DropReason::Backlog,
        DropReason::PostRateLimit,
        DropReason::LoaderBacklog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RingBuffer => "ring_buffer",
            DropReason::ProcessRingBuffer => "process_ring_buffer",
            DropReason::DataRingBuffer => "data_ring_buffer",
            DropReason::ImaRingBuffer => "ima_ring_buffer",
            DropReason::ScratchBusy => "scratch_busy",
            DropReason::KernelSkipped => "kernel_skipped",
            DropReason::RateLimit => "rate_limit",
            DropReason::PolicyRateLimit => "policy_rate_limit",
            DropReason::WriteError => "write_error",
            DropReason::UnknownPolicy => "unknown_policy",
            DropReason::Backlog => "backlog",
            DropReason::PostRateLimit => "post_rate_limit",
            DropReason::LoaderBacklog => "loader_backlog",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `rate_limit_info` reason of the live stream only: lines a slow
/// `tetra getevents` client missed (they are in the file, so not a
/// [`DropReason`]).
pub const STREAM_SLOW_CLIENT: &str = "stream_slow_client";

/// Event kinds counted separately when exported.
pub const KINDS: [&str; 9] = [
    kind::KPROBE,
    kind::TRACEPOINT,
    kind::LSM,
    kind::UPROBE,
    kind::USDT,
    kind::LOADER,
    kind::EXEC,
    kind::EXIT,
    kind::RATE_LIMIT_INFO,
];

#[derive(Debug, Default)]
pub struct ExportStats {
    exported: [AtomicU64; KINDS.len()],
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Lines a slow `tetra getevents` client missed (still in the file).
    pub stream_dropped: AtomicU64,
    pub stream_clients: AtomicU64,
    pub rotations: AtomicU64,
    pub process_cache_entries: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_with_errors: AtomicU64,
    /// GetUrl and DnsLookup requests.
    pub outbound: std::sync::Arc<crate::outbound::OutboundStats>,
}

impl ExportStats {
    pub fn count_exported(&self, kind: &str) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.exported[i].fetch_add(1, Relaxed);
        }
    }

    pub fn count_dropped(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Relaxed);
    }

    pub fn exported_by_kind(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.exported)
            .map(|(k, n)| (*k, n.load(Relaxed)))
            .collect()
    }

    pub fn exported_total(&self) -> u64 {
        self.exported.iter().map(|n| n.load(Relaxed)).sum()
    }

    pub fn dropped_by_reason(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped[r.index()].load(Relaxed)))
            .collect()
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|n| n.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `rate_limit_info.reason` enum of docs/events.schema.json names
    /// exactly the reasons the daemon can write: every `DropReason` and the
    /// stream's own, nothing more.
    #[test]
    fn the_schema_lists_every_drop_reason_and_no_other() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.schema.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
        let pointer = "/$defs/rate_limit_info/properties/reason/enum";
        let listed: std::collections::BTreeSet<&str> = schema
            .pointer(pointer)
            .and_then(|e| e.as_array())
            .unwrap_or_else(|| panic!("{path} has no {pointer}"))
            .iter()
            .map(|v| v.as_str().expect("enum values are strings"))
            .collect();
        let written: std::collections::BTreeSet<&str> = DropReason::ALL
            .iter()
            .map(|r| r.as_str())
            .chain([STREAM_SLOW_CLIENT])
            .collect();
        assert_eq!(
            written.len(),
            DropReason::ALL.len() + 1,
            "reason names are distinct"
        );
        let missing: Vec<_> = written.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&written).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{pointer}: missing {missing:?}, not written by the daemon {extra:?}"
        );
    }
}
