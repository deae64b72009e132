//! The policy language: Tetragon's TracingPolicy as a typed model, its
//! parser and checks, the policy modes, the TOML sidecar and the rules for
//! which files of the policy folder count.
//!
//! Entry points: [`load_policy_file`] / [`parse_policy`] (errors read
//! `FILE:LINE:COL: MESSAGE`), [`load_sidecar`], [`resolve`] for the mode in
//! effect, [`is_policy_file`] for the folder watcher.

mod de;
pub mod error;
pub mod files;
pub mod ima;
pub mod issue;
pub mod key;
pub mod limits;
pub mod location;
pub mod macros;
pub mod mode;
pub mod model;
pub mod origins;
pub mod parse;
pub mod sidecar;
pub mod unsupported;
pub mod validate;

#[cfg(test)]
mod fields_tests;

pub use error::PolicyError;
pub use files::{is_ignored_name, is_policy_file, is_sidecar_file};
pub use issue::Issue;
pub use key::{display_namespace, PolicyKey};
pub use location::{NodePath, Part, Position, Positions};
pub use mode::{
    has_enforcement_action, policy_mode, resolve, EffectiveMode, InvalidMode, Mode, ModeSource,
    Resolved, MONITOR_ONLY_RUNTIME_ERROR, MONITOR_ONLY_WARNING, POLICY_MODE_OPTION,
};
pub use model::*;
pub use parse::{load_policy_file, parse_policy};
pub use sidecar::{load_sidecar, parse_sidecar, render_sidecar, sidecar_path, Sidecar};
pub use validate::validate;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn keys_and_namespaces() {
        let global = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: g}
spec: {}
";
        let namespaced = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata: {name: n, namespace: web}
spec: {}
";
        let g = parse_policy(Path::new("g.yaml"), global).unwrap();
        let n = parse_policy(Path::new("n.yaml"), namespaced).unwrap();
        assert_eq!(PolicyKey::of(&g), PolicyKey::new("", "g"));
        assert_eq!(PolicyKey::of(&n), PolicyKey::new("web", "n"));
        assert_eq!(display_namespace(g.namespace()), "(global)");
        assert_eq!(display_namespace(n.namespace()), "web");
    }
}
