//! Tetragon's limits on what one hook may hold. Those the kernel programs
//! share are defined once, in the ABI crate (they size `HookConf`'s arrays);
//! the rest are the policy language's own. Validation rejects a policy over
//! a limit and compiling checks again before it fills the arrays, both with
//! the words of [`OverLimit`].

pub use tetragond_ebpf::{MAX_ACTIONS, MAX_ARGS, MAX_SELECTORS, MAX_VALUES};

/// Bytes of a Prefix / NotPrefix value.
pub const MAX_PREFIX_LEN: usize = 256;
/// Bytes of a Postfix / NotPostfix value.
pub const MAX_POSTFIX_LEN: usize = 128;
pub const MAX_TAGS: usize = 16;

/// A list of a hook longer than Tetragon allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    #[error("no more than {MAX_ARGS} args supported")]
    Args,
    #[error("no more than {MAX_TAGS} tags supported")]
    Tags,
    #[error("no more than {MAX_SELECTORS} selectors supported")]
    Selectors,
    #[error("no more than {MAX_ACTIONS} actions per selector supported")]
    Actions,
}

impl OverLimit {
    pub fn max(self) -> usize {
        match self {
            OverLimit::Args => MAX_ARGS,
            OverLimit::Tags => MAX_TAGS,
            OverLimit::Selectors => MAX_SELECTORS,
            OverLimit::Actions => MAX_ACTIONS,
        }
    }

    /// Err(self) when `count` is over the limit.
    pub fn check(self, count: usize) -> Result<(), OverLimit> {
        if count > self.max() {
            Err(self)
        } else {
            Ok(())
        }
    }
}
