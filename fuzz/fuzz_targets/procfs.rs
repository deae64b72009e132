//! The /proc readers: `stat` (whose command name a process chooses, and
//! may fill with spaces and parentheses), the capability lines and the
//! PPid, Uid and NSpid lines of `status`, and `cmdline`; and the tracefs
//! `format` reader. Any bytes read or fail quietly, never a panic. The
//! first byte picks the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetragond::{
    kernel_info::tracefs::parse_format,
    process::procfs::{parse_caps, parse_stat, parse_status, split_argv},
};

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            let _ = parse_stat(&String::from_utf8_lossy(rest));
        }
        1 => {
            let _ = parse_caps(&String::from_utf8_lossy(rest));
        }
        2 => {
            let _ = parse_status(&String::from_utf8_lossy(rest));
        }
        3 => {
            let _ = parse_format(&String::from_utf8_lossy(rest));
        }
        _ => {
            let _ = split_argv(rest);
        }
    }
});
