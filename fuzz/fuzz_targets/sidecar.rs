//! The TOML sidecar parser: never panics; errors name the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tetragond::policy::parse_sidecar(Path::new("f.toml"), text) {
        Ok(sidecar) => {
            // What the daemon writes back must read back the same.
            let again = tetragond::policy::render_sidecar(&sidecar);
            let reread = tetragond::policy::parse_sidecar(Path::new("f.toml"), &again)
                .expect("a rendered sidecar parses");
            assert_eq!(reread, sidecar, "render/parse round trip of {again:?}");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with("f.toml:"),
                "error without its file: {shown:?}"
            );
        }
    }
});
