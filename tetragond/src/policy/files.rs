//! Which files of the policy folder are policies or sidecars. Editors,
//! package managers and half-written files leave litter there; none of it
//! may be loaded as a policy.

use std::path::Path;

const POLICY_EXTENSIONS: [&str; 2] = ["yaml", "yml"];
const SIDECAR_EXTENSION: &str = "toml";

/// `*.yaml` / `*.yml`, not a dotfile nor editor / package manager litter.
pub fn is_policy_file(path: &Path) -> bool {
    has_extension(path, &POLICY_EXTENSIONS)
}

/// `*.toml` under the same rules.
pub fn is_sidecar_file(path: &Path) -> bool {
    has_extension(path, &[SIDECAR_EXTENSION])
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if is_ignored_name(name) {
        return false;
    }
    let ext = path.extension().and_then(|e| e.to_str());
    ext.is_some_and(|e| extensions.contains(&e))
}

/// Dotfiles (also vim's `.x.swp`), backups `x~`, swap `*.swp`/`*.swx`,
/// dpkg/ucf leftovers, emacs autosaves `#x#`, temporary `*.tmp`.
pub fn is_ignored_name(name: &str) -> bool {
    const SUFFIXES: [&str; 4] = ["~", ".swp", ".swx", ".tmp"];
    const INFIXES: [&str; 2] = [".dpkg-", ".ucf-"];
    name.is_empty()
        || name.starts_with('.')
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
        || INFIXES.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files() {
        for ok in [
            "/etc/tetragond/policies.d/a.yaml",
            "b.yml",
            "read-etc-passwd.yaml",
            "a.b.yaml",
        ] {
            assert!(is_policy_file(Path::new(ok)), "{ok}");
        }
        for bad in [
            ".hidden.yaml",
            ".a.yaml.swp",
            "a.yaml~",
            "a.yaml.swp",
            "a.yaml.swx",
            "a.yaml.dpkg-new",
            "a.yaml.dpkg-old",
            "a.yaml.dpkg-dist",
            "a.yaml.dpkg-tmp",
            "a.dpkg-new.yaml",
            "a.yaml.ucf-dist",
            "a.ucf-old.yaml",
            "#a.yaml#",
            "a.yaml.tmp",
            "a.tmp",
            "a.toml",
            "a.json",
            "yaml",
            "a.YAML",
            "/",
        ] {
            assert!(!is_policy_file(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn sidecar_files() {
        assert!(is_sidecar_file(Path::new("/d/a.toml")));
        assert!(!is_sidecar_file(Path::new("/d/.a.toml")));
        assert!(!is_sidecar_file(Path::new("/d/a.toml~")));
        assert!(!is_sidecar_file(Path::new("/d/a.yaml")));
    }
}
