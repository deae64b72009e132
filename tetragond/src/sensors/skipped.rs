//! Runs of the daemon's programs the kernel skipped. The kernel does not
//! run a program again on a CPU where it is running already (preempted
//! there, or interrupted): fentry, fexit and fmod_ret programs, raw
//! tracepoint programs and, from 6.x, kprobe and tracepoint programs are
//! skipped so, and each skip is counted per program (`recursion_misses`,
//! Linux 5.12). A skipped run takes neither its event nor its action (an
//! fentry's Override among them), so the count is reported as a drop.

use std::{
    collections::{HashMap, HashSet},
    os::fd::AsFd,
};

use super::bpf_syscall::recursion_misses;

/// The kernel keeps a program's name in 16 bytes, NUL included.
const KERNEL_NAME_LEN: usize = 15;

pub struct SkippedRuns {
    /// The daemon's programs' names as the kernel keeps them: programs of
    /// an earlier run of the daemon, still linked (pinned), are ours too.
    names: HashSet<Vec<u8>>,
    /// Each program's count when last read, by program id.
    seen: HashMap<u32, u64>,
    total: u64,
}

impl SkippedRuns {
    /// Counts from now: what programs already loaded skipped before is
    /// not this run's.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let names = names
            .into_iter()
            .map(|n| n.as_bytes()[..n.len().min(KERNEL_NAME_LEN)].to_vec())
            .collect();
        let mut skipped = SkippedRuns {
            names,
            seen: HashMap::new(),
            total: 0,
        };
        skipped.read();
        skipped.total = 0;
        skipped
    }

    /// This run's skipped runs so far, summed over the daemon's programs;
    /// None where the kernel does not count them.
    pub fn total(&mut self) -> Option<u64> {
        self.read().then_some(self.total)
    }

    /// Adds what each of our programs skipped since it was last read (a
    /// program first seen: all it counts); whether the kernel counts.
    fn read(&mut self) -> bool {
        let mut counted = false;
        let mut now = HashMap::with_capacity(self.seen.len());
        for info in aya::programs::loaded_programs().flatten() {
            if !self.names.contains(info.name()) {
                continue;
            }
            let Ok(fd) = info.fd() else {
                continue; // unloaded meanwhile
            };
            let Ok(Some(misses)) = recursion_misses(fd.as_fd()) else {
                continue;
            };
            counted = true;
            let before = self.seen.get(&info.id()).copied().unwrap_or(0);
            self.total += misses.saturating_sub(before);
            now.insert(info.id(), misses);
        }
        self.seen = now;
        counted
    }
}
