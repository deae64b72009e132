//! The USDT note reader (`usdt::parse`): the binary a `usdts` hook names
//! is read for its SDT notes and their argument specs. Any bytes read or
//! fail with an error, never a panic or a hang. The first byte picks the
//! reader: a whole ELF file, or one argument spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetragond::usdt;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let _ = usdt::parse(rest);
    } else if let Ok(spec) = std::str::from_utf8(rest) {
        let _ = usdt::parse_operand(spec, &|name| name.len().checked_sub(4).map(|d| d as i64));
    }
});
