//! Where a selector's filters taken from macros (`policy::macros`) were
//! written. Kept on the policy (`TracingPolicy::macro_origins`), apart from
//! the expansion, so that the model does not depend on it.

use super::{Issue, NodePath};

/// Where the filters a selector took from macros were written, so that a
/// later issue with one of them points into the macro, and names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(Vec<Origin>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// The filter field in the selector (`...selectors[0].matchArgs`).
    taken: NodePath,
    /// The same field in the macro (`spec.selectorsMacros.NAME.matchArgs`).
    written: NodePath,
    name: String,
}

impl Origins {
    /// Records that the filter field `taken` of a selector was written at
    /// `written`, in macro `name`.
    pub fn push(&mut self, taken: NodePath, written: NodePath, name: String) {
        self.0.push(Origin {
            taken,
            written,
            name,
        });
    }

    /// `issue` at the macro's own text when it is about a filter taken
    /// from a macro; unchanged otherwise.
    pub fn relocate(&self, issue: Issue) -> Issue {
        let (path, message) = self.place(&issue.path, issue.message);
        Issue::at(path, issue.part, message)
    }

    /// Where a fault at `path` is reported, and its text: in the macro the
    /// filter at `path` was taken from, named, or at `path` itself.
    pub fn place(&self, path: &NodePath, message: impl std::fmt::Display) -> (NodePath, String) {
        let taken = self.0.iter().find_map(|o| {
            let rest = path.strip_prefix(&o.taken)?;
            Some((o.written.join(&rest), o.name.as_str()))
        });
        match taken {
            Some((written, name)) => (written, format!("in macro {name:?}: {message}")),
            None => (path.clone(), message.to_string()),
        }
    }
}
