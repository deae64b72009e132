//! Kernel time to wall-clock time, written as RFC 3339 with nanoseconds
//! (the `time` of every exported event).

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts kernel monotonic time to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    boot_ns: i128,
}

impl Clock {
    pub fn now() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out pointer; CLOCK_MONOTONIC is what bpf_ktime_get_ns reads.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        Clock {
            boot_ns: wall - mono,
        }
    }

    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        rfc3339_nanos(self.unix_ns(ktime_ns))
    }

    /// Appends the RFC 3339 form of kernel time `ktime_ns` (no allocation).
    pub fn write_rfc3339(&self, out: &mut Vec<u8>, ktime_ns: u64) {
        write_rfc3339(out, self.unix_ns(ktime_ns));
    }

    fn unix_ns(&self, ktime_ns: u64) -> i128 {
        self.boot_ns + ktime_ns as i128
    }

    /// A clock whose kernel time 0 is `boot_ns` after the epoch.
    #[cfg(test)]
    pub(crate) fn at_boot(boot_ns: i128) -> Self {
        Clock { boot_ns }
    }
}

/// `2026-11-29T04:50:31.123456789Z`
pub fn rfc3339_nanos(unix_ns: i128) -> String {
    let mut out = Vec::with_capacity(30);
    write_rfc3339(&mut out, unix_ns);
    // Digits and ASCII punctuation only.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `2026-11-29T04:50:31.123456789Z`: per event, so written digit by
/// digit rather than through `format!`.
pub fn write_rfc3339(out: &mut Vec<u8>, unix_ns: i128) {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u64);
    let (y, m, d) = civil_from_days(days);
    // Years before 0 or after 9999 do not occur in kernel time.
    digits(out, y.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    digits(out, u64::from(m), 2);
    out.push(b'-');
    digits(out, u64::from(d), 2);
    out.push(b'T');
    digits(out, rem / 3600, 2);
    out.push(b':');
    digits(out, rem % 3600 / 60, 2);
    out.push(b':');
    digits(out, rem % 60, 2);
    out.push(b'.');
    digits(out, nanos, 9);
    out.push(b'Z');
}

/// `n` in exactly `width` digits, zero-padded.
fn digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The wall clock now, RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    rfc3339_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_795_924_231_000_000_001),
            "2026-11-29T03:50:31.000000001Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nanos(-1),
            "1969-12-31T23:59:59.999999999Z",
            "before the epoch"
        );
    }
}
