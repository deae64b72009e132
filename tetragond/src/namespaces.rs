//! Namespaces of TracingPolicyNamespaced, without Kubernetes: the daemon's
//! configuration maps each namespace to cgroup v2 directories, and a
//! namespaced policy applies only to tasks inside those subtrees.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use tetragond_ebpf::{CgroupScope, MAX_CGROUP_SCOPES};

/// `[namespaces]` of the configuration: name -> cgroup v2 directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceMap {
    by_name: BTreeMap<String, Vec<PathBuf>>,
    /// The kernel's tracing programs cannot tell a task's cgroup ancestors
    /// (no `bpf_get_current_ancestor_cgroup_id` there, as on Linux 5.10).
    kernel_cannot_scope: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error(
        "namespace {0:?} is not mapped to any cgroup: add `{0} = [\"/sys/fs/cgroup/...\"]` under [namespaces] in the daemon configuration"
    )]
    Unmapped(String),
    #[error(
        "namespaced policies need bpf_get_current_ancestor_cgroup_id in tracing programs, which this kernel lacks (Linux 5.10 has it for cgroup programs only)"
    )]
    KernelCannotScope,
    #[error("namespace {namespace:?}: at most {MAX_CGROUP_SCOPES} cgroups")]
    TooMany { namespace: String },
    #[error("namespace {namespace:?}: cgroup {path}: {reason}")]
    BadCgroup {
        namespace: String,
        path: String,
        reason: String,
    },
}

impl NamespaceMap {
    pub fn new(by_name: BTreeMap<String, Vec<PathBuf>>) -> Self {
        NamespaceMap {
            by_name,
            kernel_cannot_scope: false,
        }
    }

    /// Says whether the running kernel can scope a hook to cgroups; when it
    /// cannot, every namespaced policy is refused rather than run unscoped.
    pub fn with_kernel_scoping(mut self, kernel_can_scope: bool) -> Self {
        self.kernel_cannot_scope = !kernel_can_scope;
        self
    }

    /// Tetragon's FILTERID: a number per namespace, 0 for global policies.
    pub fn filter_id(&self, namespace: &str) -> u64 {
        self.by_name
            .keys()
            .position(|n| n == namespace)
            .map_or(0, |i| i as u64 + 1)
    }

    /// The kernel scopes of `namespace`, read from cgroupfs now (a cgroup
    /// may be created after the daemon starts).
    pub fn scopes(&self, namespace: &str) -> Result<Vec<CgroupScope>, ScopeError> {
        if self.kernel_cannot_scope {
            return Err(ScopeError::KernelCannotScope);
        }
        let paths = self
            .by_name
            .get(namespace)
            .ok_or_else(|| ScopeError::Unmapped(namespace.to_string()))?;
        if paths.len() > MAX_CGROUP_SCOPES {
            return Err(ScopeError::TooMany {
                namespace: namespace.to_string(),
            });
        }
        let mounts = cgroup2_mounts();
        paths
            .iter()
            .map(|p| {
                scope_of(p, &mounts).map_err(|reason| ScopeError::BadCgroup {
                    namespace: namespace.to_string(),
                    path: p.display().to_string(),
                    reason,
                })
            })
            .collect()
    }
}

/// Mount points of cgroup2 file systems, longest first.
fn cgroup2_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip(1);
            let (target, fstype) = (f.next()?, f.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(target))
        })
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    mounts
}

fn scope_of(path: &Path, mounts: &[PathBuf]) -> Result<CgroupScope, String> {
    let root = mounts
        .iter()
        .find(|m| path.starts_with(m))
        .ok_or_else(|| format!("not on a cgroup v2 file system (mounted at: {mounts:?})"))?;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    let relative = path.strip_prefix(root).map_err(|e| e.to_string())?;
    let level = relative.components().count() as u32;
    // A cgroup's id is its directory's inode number in cgroupfs.
    Ok(CgroupScope {
        id: meta.ino(),
        level,
        _pad: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> NamespaceMap {
        let mut m = BTreeMap::new();
        m.insert(
            "web".to_string(),
            vec![PathBuf::from("/nonexistent/cgroup/web")],
        );
        m.insert("db".to_string(), vec![]);
        NamespaceMap::new(m)
    }

    #[test]
    fn filter_ids_are_stable_and_zero_for_global() {
        let m = map();
        assert_eq!(m.filter_id("db"), 1);
        assert_eq!(m.filter_id("web"), 2);
        assert_eq!(m.filter_id(""), 0);
    }

    #[test]
    fn unmapped_and_bad_paths_say_what_to_do() {
        let m = map();
        assert!(matches!(m.scopes("shop"), Err(ScopeError::Unmapped(_))));
        let err = m.scopes("web").expect_err("not a cgroup");
        assert!(err.to_string().contains("/nonexistent/cgroup/web"), "{err}");
    }

    #[test]
    fn level_counts_components_below_the_mount() {
        let mounts = vec![PathBuf::from("/")];
        let scope = scope_of(Path::new("/tmp"), &mounts).expect("a directory");
        assert_eq!(scope.level, 1);
    }
}
