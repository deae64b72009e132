//! The /proc readers: `stat` (whose command name a process chooses, and
//! may fill with spaces and parentheses), the capability lines of
//! `status`, and `cmdline`. Any bytes read or fail quietly, never a panic.
//! The first byte picks the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetragond::process::procfs::{parse_caps, parse_stat, split_argv};

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = parse_stat(&String::from_utf8_lossy(rest));
        }
        1 => {
            let _ = parse_caps(&String::from_utf8_lossy(rest));
        }
        _ => {
            let _ = split_argv(rest);
        }
    }
});
