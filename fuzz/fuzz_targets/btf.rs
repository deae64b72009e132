//! The kernel BTF reader: any bytes parse or fail with an error, never a
//! panic or a hang; on what parses, the lookups the compile step makes for
//! `resolve` and `type: auto` (an argument's type, a field path, a type's
//! name and kind) return. The seed (`corpus/btf/tiny`) declares a struct
//! `s` with members `a` (a `struct s *`), `b` and `c`, a function `f(struct
//! s *p)`, its LSM twin and a raw tracepoint `f`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetragond::kernel_info::btf::{ArgOrigin, KernelBtf};

const PATHS: [&[&str]; 4] = [&["a"], &["a", "a", "b"], &["a", "c"], &["b", "a"]];

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = KernelBtf::parse(data) else {
        return;
    };
    let origins = [
        ArgOrigin::Function { name: "f", index: 0 },
        ArgOrigin::Lsm { hook: "f", index: 0 },
        ArgOrigin::RawTracepoint { event: "f", index: 0 },
        ArgOrigin::Struct("s"),
    ];
    for origin in origins {
        if let Ok(id) = btf.arg_type(origin) {
            let _ = btf.value_kind(id);
            let _ = btf.type_name(id);
        }
        if let Ok(start) = btf.arg_struct(origin) {
            for path in PATHS {
                let _ = btf.walk_fields(start, path);
            }
        }
    }
    // Every type, as a start or a name: cycles and bad references included.
    let count = u32::try_from(btf.type_count()).unwrap_or(u32::MAX).min(256);
    for id in 0..=count {
        let _ = btf.type_name(id);
        let _ = btf.value_kind(id);
        let _ = btf.composite_name(id);
        let _ = btf.walk_fields(id, PATHS[1]);
    }
});
