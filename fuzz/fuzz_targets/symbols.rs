//! The symbol readers the event path feeds with what it did not write:
//! kallsyms text, /proc/PID/maps text, and ELF files a user owns (their
//! functions name user stack frames; their build ID goes in
//! `process_loader` events). Any bytes read or fail quietly, never a panic
//! or a hang; lookups on what was read return. The first byte picks the
//! reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetragond::{
    kernel_info::kallsyms::KernelSymbols,
    process::user_symbols::{parse_maps, ElfFunctions},
};

const ADDRESSES: [u64; 5] = [0, 1, 0x1000, 0xffff_ffff_8100_0000, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let symbols = KernelSymbols::parse(&String::from_utf8_lossy(rest));
            for addr in ADDRESSES {
                let _ = symbols.lookup(addr);
            }
        }
        1 => {
            let _ = parse_maps(&String::from_utf8_lossy(rest));
        }
        3 => {
            let _ = tetragond::loader::build_id(rest);
        }
        _ => {
            let functions = ElfFunctions::parse(rest);
            for offset in ADDRESSES {
                let _ = functions.name_at(offset);
            }
        }
    }
});
