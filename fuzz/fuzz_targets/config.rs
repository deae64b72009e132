//! The daemon's configuration file parser: never panics; errors name the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tetragond::config::parse(Path::new("f.toml"), text) {
        let shown = e.to_string();
        assert!(
            shown.starts_with("f.toml:"),
            "error without its file: {shown:?}"
        );
    }
});
