//! A problem found in a policy, named by the path of its node; the parser
//! turns that path into a line and column.

use std::fmt;

use super::location::{NodePath, Part};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: NodePath,
    /// Point at the key (`selectors:`) or at the value.
    pub part: Part,
    pub message: String,
}

impl Issue {
    pub fn at(path: NodePath, part: Part, message: impl Into<String>) -> Self {
        Issue {
            path,
            part,
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub type Check = Result<(), Issue>;
