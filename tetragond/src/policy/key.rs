//! What identifies a policy: its namespace (empty for a global
//! `TracingPolicy`) and its name, and the ways that pair is written.

use std::fmt;

use super::TracingPolicy;

/// A policy's identity. Ordered and hashable: a map key.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    namespace: String,
    name: String,
}

impl PolicyKey {
    /// `namespace` empty for a global policy.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PolicyKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(policy: &TracingPolicy) -> Self {
        PolicyKey::new(policy.namespace(), policy.name())
    }

    /// Empty for a global policy.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name without `.yaml` that AddPolicy writes: `name`, or
    /// `namespace.name` (a dot: a slash would make a folder).
    pub fn file_stem(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.namespace, self.name)
        }
    }

    /// The key of the policy's run-time settings in the state folder:
    /// `namespace/name`, `/name` for a global policy. Kept apart from
    /// `Display`: state files written by earlier versions use it.
    pub fn runtime_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `name` for a global policy, `namespace/name` for a namespaced one, as
/// messages and logs name a policy.
impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// How a namespace is shown in tables: `(global)` for none.
pub fn display_namespace(ns: &str) -> &str {
    if ns.is_empty() {
        "(global)"
    } else {
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_of_a_global_and_a_namespaced_key() {
        let global = PolicyKey::new("", "p");
        let namespaced = PolicyKey::new("web", "p");
        assert_eq!(global.to_string(), "p");
        assert_eq!(namespaced.to_string(), "web/p");
        assert_eq!(global.file_stem(), "p");
        assert_eq!(namespaced.file_stem(), "web.p");
        assert_eq!(global.runtime_key(), "/p");
        assert_eq!(namespaced.runtime_key(), "web/p");
    }
}
