//! The policy parser: any text either parses or fails with an error that
//! starts with `FILE:` (FILE:LINE:COL: MESSAGE); it never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tetragond::policy::parse_policy(Path::new("f.yaml"), text) {
        let shown = e.to_string();
        assert!(
            shown.starts_with("f.yaml:"),
            "error without its file: {shown:?}"
        );
    }
});
