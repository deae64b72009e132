//! Event export: every line goes through here on its way to the events
//! file and the live stream. Rate limits are applied here, and every event
//! that does not make it is counted by reason, logged, and reported in the
//! file itself as a `rate_limit_info` event: nothing is lost silently.

pub mod ancestors;
pub mod dbus;
pub mod ima_waits;
pub mod ratelimit;
pub mod ring;
pub mod stats;
pub mod stream;
pub mod whole_buffers;
pub mod writer;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Instant,
};

use serde::Deserialize;

use crate::events::{self, Exported};
pub use ancestors::AncestorEvents;
pub use ratelimit::RateLimits;
pub use stats::{DropReason, ExportStats};
pub use stream::StreamHub;
pub use writer::{RotatingFile, Rotation};

pub const DEFAULT_FILE: &str = "/var/log/tetragond/events.log";
pub const DEFAULT_SOCKET: &str = "/run/tetragond/events.sock";
/// Tetragon's defaults: 10 MiB files, 5 backups, uncompressed.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_BACKUPS: u32 = 5;

/// Which `process_exec` / `process_exit` events are exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessEvents {
    /// Those of processes that were the subject of an exported policy
    /// event: the exec just before its first such event (dated at the
    /// exec), the exit when it ends.
    #[default]
    Policy,
    /// Every exec and exit on the host.
    All,
    None,
}

/// The export settings, resolved from flags, the config file and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub file: PathBuf,
    pub rotation: Rotation,
    /// Events per minute; 0: unlimited.
    pub rate_limit_per_minute: u64,
    pub policy_rate_limit_per_minute: u64,
    pub process_events: ProcessEvents,
    pub process_cache_size: usize,
    /// What process objects carry beyond Tetragon's defaults.
    pub process_identity: crate::process::Identity,
    /// The events that carry `ancestors`.
    pub ancestors: AncestorEvents,
    /// The live stream's socket; None: no stream.
    pub socket: Option<PathBuf>,
    /// Identical events folded in the kernel within this window; 0: off.
    pub aggregate_window_ms: u64,
    /// Bytes of the kernel's event ring buffer.
    pub ring_buffer_bytes: u32,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            file: DEFAULT_FILE.into(),
            rotation: Rotation {
                max_size_bytes: DEFAULT_MAX_SIZE,
                backups: DEFAULT_BACKUPS,
                compress: false,
            },
            rate_limit_per_minute: 0,
            policy_rate_limit_per_minute: 0,
            process_events: ProcessEvents::Policy,
            process_cache_size: crate::process::DEFAULT_MAX_ENTRIES,
            process_identity: crate::process::Identity::default(),
            ancestors: AncestorEvents::default(),
            socket: Some(DEFAULT_SOCKET.into()),
            aggregate_window_ms: 0,
            ring_buffer_bytes: crate::sensors::ring_size::default_ring_bytes(),
        }
    }
}

/// The kernel's ring-buffer loss counters (`LOSSES`, summed over CPUs),
/// by kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelLosses {
    pub policy_events: u64,
    /// Exec and exit records: they cost process context, not events.
    pub process_records: u64,
    /// Pieces of `maxData` buffers: their events carry the buffer cut.
    pub data_pieces: u64,
    /// IMA hashes: their events go without `ima_hash`.
    pub ima_hashes: u64,
    /// Program runs that found every scratch slot of their CPU held, and
    /// did not run: their events and actions were not taken.
    pub busy_runs: u64,
    /// Program runs the kernel skipped (`sensors::skipped`): the same.
    pub skipped_runs: u64,
}

pub struct Exporter {
    file: RotatingFile,
    limits: RateLimits,
    stats: Arc<ExportStats>,
    stream: Option<StreamHub>,
    node_name: String,
    /// Drops not yet reported in a `rate_limit_info` event, by reason and
    /// policy (empty for drops not tied to one).
    unreported: BTreeMap<(DropReason, String), u64>,
    kernel_losses_seen: KernelLosses,
    /// Each policy slot's `rate_limited` total when last looked at.
    post_rate_limited_seen: HashMap<u32, u64>,
}

impl Exporter {
    pub fn new(
        file: RotatingFile,
        limits: RateLimits,
        stats: Arc<ExportStats>,
        stream: Option<StreamHub>,
        node_name: &str,
    ) -> Self {
        Exporter {
            file,
            limits,
            stats,
            stream,
            node_name: node_name.to_string(),
            unreported: BTreeMap::new(),
            kernel_losses_seen: KernelLosses::default(),
            post_rate_limited_seen: HashMap::new(),
        }
    }

    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }

    /// Whether an event of `policy` would pass the rate limits now; when it
    /// would not, the drop is counted. Takes a token when it passes.
    pub fn admit(&mut self, policy: &str) -> bool {
        if self.limits.unlimited() {
            return true;
        }
        match self.limits.check(policy, Instant::now()) {
            Ok(()) => true,
            Err(reason) => {
                self.dropped(reason, policy, 1);
                false
            }
        }
    }

    /// Writes a line of `kind` that was admitted (see [`Exporter::admit`]).
    pub fn write(&mut self, kind: &'static str, line: &[u8]) {
        match self.file.write_line(line) {
            Ok(rotated) => {
                if rotated {
                    self.stats.rotations.fetch_add(1, Relaxed);
                }
                self.stats.count_exported(kind);
            }
            Err(e) => self.write_failed(e),
        }
        if let Some(stream) = &mut self.stream {
            stream.send(line);
        }
    }

    /// Admits then writes.
    pub fn export(&mut self, ev: &Exported) {
        if self.admit(&ev.policy_name) {
            self.write(ev.kind, &ev.line);
        }
    }

    /// Counts `n` events lost for `reason` (reported at the next tick).
    pub fn dropped(&mut self, reason: DropReason, policy: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.stats.count_dropped(reason, n);
        *self
            .unreported
            .entry((reason, policy.to_string()))
            .or_default() += n;
    }

    /// The kernel's running totals of records that did not fit in the
    /// ring buffer; the increase since the last call is counted as
    /// dropped, by what the records were.
    pub fn kernel_losses(&mut self, totals: KernelLosses) {
        // The counters live as long as the BPF object, which is ours alone.
        let seen = std::mem::replace(&mut self.kernel_losses_seen, totals);
        for (reason, total, seen) in [
            (
                DropReason::RingBuffer,
                totals.policy_events,
                seen.policy_events,
            ),
            (
                DropReason::ProcessRingBuffer,
                totals.process_records,
                seen.process_records,
            ),
            (
                DropReason::DataRingBuffer,
                totals.data_pieces,
                seen.data_pieces,
            ),
            (
                DropReason::ImaRingBuffer,
                totals.ima_hashes,
                seen.ima_hashes,
            ),
            (DropReason::ScratchBusy, totals.busy_runs, seen.busy_runs),
            (
                DropReason::KernelSkipped,
                totals.skipped_runs,
                seen.skipped_runs,
            ),
        ] {
            self.dropped(reason, "", total.saturating_sub(seen));
        }
    }

    /// The running total of Post events the `rateLimit` of the policy in
    /// `policy_slot` kept in the kernel; the increase since the last call
    /// is reported (a slot given to a new policy starts again from 0).
    pub fn post_rate_limited(&mut self, policy_slot: u32, policy: &str, total: u64) {
        let seen = self
            .post_rate_limited_seen
            .insert(policy_slot, total)
            .unwrap_or(0);
        self.dropped(
            DropReason::PostRateLimit,
            policy,
            total.saturating_sub(seen),
        );
    }

    /// Writes the buffered lines out (end of a ring buffer drain).
    pub fn flush(&mut self) {
        if let Err(e) = self.file.flush() {
            self.write_failed(e);
        }
        if let Some(stream) = &mut self.stream {
            stream.accept_new();
        }
    }

    /// Once a second: report and log what was dropped since the last tick,
    /// forget idle rate-limit buckets, flush.
    pub fn tick(&mut self) {
        let now = crate::clock::now_rfc3339();
        for ((reason, policy), n) in std::mem::take(&mut self.unreported) {
            tracing::warn!(
                reason = reason.as_str(),
                policy = policy.as_str(),
                "{n} events dropped ({})",
                reason.as_str()
            );
            let info = events::rate_limit_info(n, reason.as_str(), &policy, &now, &self.node_name);
            // Reports are never rate limited themselves.
            self.write(info.kind, &info.line);
        }
        self.limits.prune(Instant::now());
        self.flush();
    }

    fn write_failed(&mut self, e: writer::WriteFailure) {
        tracing::error!("{e}");
        self.stats.count_dropped(DropReason::WriteError, e.lines);
        // Reported in the file too, in case the problem was passing.
        *self
            .unreported
            .entry((DropReason::WriteError, String::new()))
            .or_default() += e.lines;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn exporter(name: &str, limits: RateLimits) -> (Exporter, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("tetragond-export-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("events.log");
        let file = RotatingFile::open(
            &path,
            Rotation {
                max_size_bytes: 0,
                backups: 0,
                compress: false,
            },
        )
        .expect("open");
        let stats = Arc::new(ExportStats::default());
        (Exporter::new(file, limits, stats, None, "node"), path)
    }

    fn lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    }

    fn event(policy: &str) -> Exported {
        Exported {
            kind: events::kind::TRACEPOINT,
            policy_name: policy.into(),
            line: format!(r#"{{"process_tracepoint":{{"policy_name":"{policy}"}}}}"#).into_bytes(),
        }
    }

    #[test]
    fn rate_limited_events_are_counted_and_reported() {
        let (mut x, path) = exporter("limits", RateLimits::new(0, 3));
        for _ in 0..10 {
            x.export(&event("a"));
        }
        x.tick();
        let out = lines(&path);
        assert_eq!(out.len(), 4);
        let info = &out[3]["rate_limit_info"];
        assert_eq!(info["number_of_dropped_process_events"], "7");
        assert_eq!(info["reason"], "policy_rate_limit");
        assert_eq!(info["policy_name"], "a");
        assert_eq!(x.stats().dropped_total(), 7);
        assert_eq!(
            x.stats().exported_total(),
            4,
            "the report counts as exported"
        );
        x.tick();
        assert_eq!(lines(&path).len(), 4, "nothing new to report");
    }

    #[test]
    fn kernel_losses_are_deltas() {
        let (mut x, path) = exporter("losses", RateLimits::new(0, 0));
        let losses =
            |policy_events, process_records, data_pieces, ima_hashes, busy_runs| KernelLosses {
                policy_events,
                process_records,
                data_pieces,
                ima_hashes,
                busy_runs,
                skipped_runs: busy_runs / 2,
            };
        x.kernel_losses(losses(5, 0, 0, 0, 0));
        x.kernel_losses(losses(5, 2, 3, 1, 0));
        x.kernel_losses(losses(12, 2, 3, 4, 6));
        x.tick();
        let out = lines(&path);
        assert_eq!(out.len(), 6, "{out:?}");
        let count = |reason: &str| {
            out.iter()
                .find(|l| l["rate_limit_info"]["reason"] == reason)
                .map(|l| l["rate_limit_info"]["number_of_dropped_process_events"].clone())
        };
        assert_eq!(count("ring_buffer"), Some("12".into()));
        assert_eq!(count("process_ring_buffer"), Some("2".into()));
        assert_eq!(count("data_ring_buffer"), Some("3".into()));
        assert_eq!(count("ima_ring_buffer"), Some("4".into()));
        assert_eq!(count("scratch_busy"), Some("6".into()));
        assert_eq!(count("kernel_skipped"), Some("3".into()));
    }
}
