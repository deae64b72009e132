//! Kernel memory of our programs and maps, from the kernel's own accounting
//! (`memlock:` in /proc/self/fdinfo of each BPF fd).

use std::fs;

/// Total bytes the kernel charges for every BPF program and map this process holds.
pub fn bpf_memlock_total() -> u64 {
    let Ok(dir) = fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter(|info| info.contains("prog_id:") || info.contains("map_id:"))
        .filter_map(|info| memlock(&info))
        .sum()
}

fn memlock(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memlock_line() {
        let info = "pos:\t0\nflags:\t02000002\nmap_type:\t1\nmemlock:\t8512\nmap_id:\t12\n";
        assert_eq!(super::memlock(info), Some(8512));
        assert_eq!(super::memlock("pos:\t0\n"), None);
    }
}
