//! The size of the kernel's event ring buffer.

use std::ops::RangeInclusive;

/// Sizes the configuration may ask for (`[export] ring_buffer_size`); the
/// kernel takes a power-of-two multiple of the page size.
pub const RING_BYTES: RangeInclusive<u64> = (64 << 10)..=(1 << 30);

const PER_CPU: u32 = 1 << 20;
const DEFAULT_MIN: u32 = 2 << 20;
const DEFAULT_MAX: u32 = 32 << 20;

/// The default size on this machine: see [`ring_bytes_for`].
pub fn default_ring_bytes() -> u32 {
    ring_bytes_for(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// 1 MiB per CPU (some 2,500 events each), from 2 MiB to 32 MiB, a power
/// of two. Producers scale with the CPUs, and the one reader must outlast
/// its pauses (4 to 16 ms) and a busy machine's delays: on the 2-core
/// development VM, 2 MiB (10 ms at 500,000 events a second) lost nothing
/// at any rate `scripts/bench-events` reaches. The ring is most of the
/// daemon's kernel memory with no policy loaded, so it does not grow past
/// that need.
pub fn ring_bytes_for(cpus: usize) -> u32 {
    u32::try_from(cpus)
        .unwrap_or(u32::MAX)
        .saturating_mul(PER_CPU)
        .clamp(DEFAULT_MIN, DEFAULT_MAX)
        .next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::{ring_bytes_for, RING_BYTES};

    #[test]
    fn one_mib_per_cpu_from_two_to_thirty_two_as_a_power_of_two() {
        let mib = |cpus| ring_bytes_for(cpus) >> 20;
        assert_eq!(
            [0, 1, 2, 3, 8, 24, 32, 33, 4096, usize::MAX].map(mib),
            [2, 2, 2, 4, 8, 32, 32, 32, 32, 32]
        );
        assert!(RING_BYTES.contains(&u64::from(ring_bytes_for(1))));
    }
}
