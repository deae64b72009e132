//! The TOML sidecar `<stem>.toml` next to `<stem>.yaml` / `<stem>.yml`: load
//! time settings that leave the policy file as Tetragon knows it.
//!
//! ```toml
//! mode = "monitor"   # or "enforce"
//! enabled = false
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::PolicyError;
use super::location::position_of_offset;
use super::mode::Mode;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `x.yaml` / `x.yml` -> `x.toml`.
pub fn sidecar_path(yaml: &Path) -> PathBuf {
    yaml.with_extension("toml")
}

/// The sidecar of the policy `yaml_path`; None when there is none.
pub fn load_sidecar(yaml_path: &Path) -> Result<Option<Sidecar>, PolicyError> {
    let path = sidecar_path(yaml_path);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_sidecar(&path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PolicyError::io(&path, e)),
    }
}

/// Parses sidecar text; `path` names the file in errors.
pub fn parse_sidecar(path: &Path, text: &str) -> Result<Sidecar, PolicyError> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let position = position_of_offset(text, e.span().map_or(0, |s| s.start));
        PolicyError::located(path, position.line, position.column, e.message().trim())
    })
}

/// The TOML text of a sidecar; unset keys are left out.
pub fn render_sidecar(sidecar: &Sidecar) -> String {
    let mut out = String::new();
    if let Some(mode) = sidecar.mode {
        out.push_str(&format!("mode = \"{mode}\"\n"));
    }
    if let Some(enabled) = sidecar.enabled {
        out.push_str(&format!("enabled = {enabled}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sidecar, PolicyError> {
        parse_sidecar(Path::new("/etc/policies.d/x.toml"), text)
    }

    #[test]
    fn paths() {
        assert_eq!(sidecar_path(Path::new("/d/x.yaml")), Path::new("/d/x.toml"));
        assert_eq!(sidecar_path(Path::new("/d/x.yml")), Path::new("/d/x.toml"));
        assert_eq!(
            sidecar_path(Path::new("/d/a.b.yaml")),
            Path::new("/d/a.b.toml")
        );
    }

    #[test]
    fn parses_both_keys_optional() {
        assert_eq!(parse("").ok(), Some(Sidecar::default()));
        let both = parse("mode = \"monitor\"\nenabled = false\n").ok();
        assert_eq!(
            both,
            Some(Sidecar {
                mode: Some(Mode::Monitor),
                enabled: Some(false)
            })
        );
        let mode = parse("# comment\nmode = \"enforce\"\n").ok();
        assert_eq!(mode.and_then(|s| s.mode), Some(Mode::Enforce));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse("mode = \"monitor\"\n  modde = \"enforce\"\n").unwrap_err();
        assert_eq!(err.position(), Some((2, 3)), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("/etc/policies.d/x.toml:2:3: "), "{text}");
        assert!(text.contains("unknown field `modde`"), "{text}");
    }

    #[test]
    fn bad_mode_value() {
        let err = parse("enabled = true\nmode = \"bogus\"\n").unwrap_err();
        assert_eq!(err.position(), Some((2, 8)), "{err}");
        assert!(
            err.to_string().contains(r#"invalid mode: "bogus""#),
            "{err}"
        );
    }

    #[test]
    fn bad_enabled_value() {
        let err = parse("enabled = \"yes\"\n").unwrap_err();
        assert_eq!(err.position().map(|p| p.0), Some(1), "{err}");
    }

    #[test]
    fn syntax_error() {
        let err = parse("mode = \n").unwrap_err();
        assert!(
            err.to_string().starts_with("/etc/policies.d/x.toml:1:"),
            "{err}"
        );
    }

    #[test]
    fn render_round_trips() {
        let cases = [
            Sidecar::default(),
            Sidecar {
                mode: Some(Mode::Monitor),
                enabled: None,
            },
            Sidecar {
                mode: Some(Mode::Enforce),
                enabled: Some(false),
            },
        ];
        for sidecar in cases {
            let text = render_sidecar(&sidecar);
            assert_eq!(parse(&text).ok(), Some(sidecar), "{text}");
        }
        let text = render_sidecar(&cases[2]);
        assert_eq!(text, "mode = \"enforce\"\nenabled = false\n");
    }

    #[test]
    fn load_from_disk() {
        let dir = std::env::temp_dir().join(format!("tetragond-sidecar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("p.yaml");
        assert_eq!(load_sidecar(&yaml).ok(), Some(None));
        std::fs::write(dir.join("p.toml"), "enabled = false\n").unwrap();
        let loaded = load_sidecar(&yaml).ok().flatten();
        assert_eq!(loaded.and_then(|s| s.enabled), Some(false));
        std::fs::write(dir.join("p.toml"), "what = 1\n").unwrap();
        let err = load_sidecar(&yaml).unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&format!("{}:1:1: ", dir.join("p.toml").display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
