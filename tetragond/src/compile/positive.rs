//! A positive `argError` on a kernel function's Override. Tetragon returns
//! `argError` from the function as it is; a positive value is no errno, and
//! only a few `security_*` functions' callers give one a meaning, which
//! the kernel has changed over time. tetragond serves one where that
//! meaning is known, returning what this kernel's caller takes for it, and
//! refuses the others.

use crate::kernel_info::HookCaps;

const ECANCELED: i32 = 125;

/// The function, and the one place a positive `argError` is served.
const COPY_UP_XATTR: &str = "security_inode_copy_up_xattr";

/// Where a positive `argError` is served, for refusals elsewhere.
pub const SERVED: &str =
    "argError 1 on security_inode_copy_up_xattr (discard the xattr) and negative errnos";

/// A positive `argError` a function's caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositiveOverride {
    pub function: &'static str,
    /// The value policies give (Tetragon's `argError: 1`).
    pub given: i32,
    /// What the function returns for it on this kernel.
    pub returned: i32,
    /// What its caller then does.
    pub meaning: &'static str,
}

/// The positive `argError` `function` takes on this kernel, if any.
/// overlayfs discards an xattr at copy-up when the hook answers 1 before
/// Linux 6.12, `-ECANCELED` since ("lsm: Refactor return value of LSM hook
/// inode_copy_up_xattr"), where 1 copies it: the value is the kernel's.
/// Where the kernel's answer is unknown, `-ECANCELED`: an older kernel
/// takes it as an error and copies nothing up, so the xattr is never
/// copied either way.
pub fn on(function: &str, caps: &HookCaps) -> Option<PositiveOverride> {
    (function == COPY_UP_XATTR).then_some(PositiveOverride {
        function: COPY_UP_XATTR,
        given: 1,
        returned: if caps.xattr_discard_one {
            1
        } else {
            -ECANCELED
        },
        meaning: "discards the xattr (overlayfs copies the file up without it)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discard_value_is_the_kernels() {
        let old = HookCaps {
            xattr_discard_one: true,
            ..Default::default()
        };
        assert_eq!(on(COPY_UP_XATTR, &old).map(|p| p.returned), Some(1));
        let new = HookCaps::default();
        assert_eq!(on(COPY_UP_XATTR, &new).map(|p| p.returned), Some(-125));
        assert_eq!(on("security_inode_mkdir", &old), None);
    }
}
