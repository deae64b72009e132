//! The store's rules against a recording fake kernel: no root, no BPF.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
};

use tetragond_ebpf::{HookConf, HookKey, PolicyCounters, MODE_ENFORCE, MODE_MONITOR};

use super::{State, Store};
use crate::{
    compile::{tests::Fixed, Attach, MapEntry},
    error::SensorError,
    policy::PolicyKey,
    sensors::{dispatch::Listing, ops::KernelOps},
};

/// What the store asked of the kernel, in order (map entries for values
/// are not recorded: the rules are about slots, lists and modes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    WriteHook(u32),
    FreeHook(u32),
    Attach,
    Detach,
    Swap { removed: Vec<u32>, added: Vec<u32> },
    SetMode(u32, u32),
}

#[derive(Default)]
struct FakeKernel {
    ops: Vec<Op>,
    lists: BTreeMap<HookKey, Vec<u32>>,
    modes: HashMap<u32, u32>,
    /// The next write_hook fails (a full map, a missing attach point).
    fail_next_hook: bool,
    /// The next swap fails (a hook list that cannot be written).
    fail_next_swap: bool,
}

impl FakeKernel {
    fn listed_slots(&self) -> Vec<u32> {
        self.lists.values().flatten().copied().collect()
    }

    fn position(&self, pred: impl Fn(&Op) -> bool) -> usize {
        self.ops
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("op not found in {:?}", self.ops))
    }
}

fn full() -> SensorError {
    SensorError::Full("injected".into())
}

impl KernelOps for FakeKernel {
    fn write_hook(&mut self, slot: u32, _: &HookConf) -> Result<(), SensorError> {
        if std::mem::take(&mut self.fail_next_hook) {
            return Err(full());
        }
        self.ops.push(Op::WriteHook(slot));
        Ok(())
    }
    fn free_hook(&mut self, slot: u32) {
        self.ops.push(Op::FreeHook(slot));
    }
    fn add_entry(&mut self, _: u32, _: &MapEntry) -> Result<(), SensorError> {
        Ok(())
    }
    fn remove_entry(&mut self, _: u32, _: &MapEntry) {}
    /// Tracepoints attach (all on the raw syscall site); nothing else can.
    fn attach(&mut self, attach: &Attach, _: u32) -> Result<Option<u32>, SensorError> {
        match attach {
            Attach::Tracepoint { .. } => {
                self.ops.push(Op::Attach);
                Ok(Some(tetragond_ebpf::site::RAW_SYS_ENTER))
            }
            _ => Err(full()),
        }
    }
    fn detach(&mut self, attach: &Attach, _: u32) {
        if let Attach::Tracepoint { .. } = attach {
            self.ops.push(Op::Detach);
        }
    }
    fn swap_lists(&mut self, old: &[Listing], new: &[Listing]) -> Result<(), SensorError> {
        if std::mem::take(&mut self.fail_next_swap) {
            return Err(full());
        }
        for l in old {
            self.lists
                .entry(l.key)
                .or_default()
                .retain(|s| *s != l.slot);
        }
        for l in new {
            self.lists.entry(l.key).or_default().push(l.slot);
        }
        self.lists.retain(|_, l| !l.is_empty());
        self.ops.push(Op::Swap {
            removed: old.iter().map(|l| l.slot).collect(),
            added: new.iter().map(|l| l.slot).collect(),
        });
        Ok(())
    }
    fn set_mode(&mut self, policy_slot: u32, mode: u32) -> Result<(), SensorError> {
        self.modes.insert(policy_slot, mode);
        self.ops.push(Op::SetMode(policy_slot, mode));
        Ok(())
    }
    fn counters(&self, _: u32) -> Result<PolicyCounters, SensorError> {
        Ok(PolicyCounters::default())
    }
    fn reset_counters(&mut self, _: u32) -> Result<(), SensorError> {
        Ok(())
    }
}

struct Fixture {
    root: PathBuf,
    dir: PathBuf,
    store: Store<FakeKernel>,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("tetragond-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("policies.d");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::new(
            dir.clone(),
            root.join("state"),
            FakeKernel::default(),
            Box::new(Fixed),
        );
        Fixture { root, dir, store }
    }

    fn write(&self, file: &str, text: &str) {
        fs::write(self.dir.join(file), text).unwrap();
    }

    fn kernel(&self) -> &FakeKernel {
        self.store.kernel()
    }

    fn kernel_mut(&mut self) -> &mut FakeKernel {
        &mut self.store.kernel
    }

    fn entry(&self, name: &str) -> &super::Entry {
        self.store
            .entries
            .values()
            .find(|e| e.key.as_ref().is_some_and(|k| k.name() == name))
            .unwrap_or_else(|| panic!("no policy {name}"))
    }

    fn slots_of(&self, name: &str) -> Vec<u32> {
        let installed = self.entry(name).installed.as_ref().expect("installed");
        installed.hooks.iter().map(|h| h.slot).collect()
    }

    fn kernel_mode_of(&self, name: &str) -> u32 {
        self.kernel().modes[&self.entry(name).policy_slot]
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A raw_syscalls Sigkill policy on syscall `nr`, with spec lines `extra`.
fn policy(name: &str, nr: u32, extra: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
{extra}  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: [\"{nr}\"]
      matchActions:
      - action: Sigkill
"
    )
}

const MONITOR: &str = "  options:\n  - name: policy-mode\n    value: monitor\n";

#[test]
fn an_edit_is_prepared_then_switched_with_its_mode_then_the_old_one_freed() {
    let mut f = Fixture::new("order");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let old = f.slots_of("p");
    f.kernel_mut().ops.clear();
    f.write("p.yaml", &policy("p", 2, MONITOR));
    f.store.rescan();
    let new = f.slots_of("p");
    assert_ne!(old, new, "a new version gets fresh slots");
    let k = f.kernel();
    let written = k.position(|op| *op == Op::WriteHook(new[0]));
    let mode = k.position(|op| matches!(op, Op::SetMode(_, m) if *m == MODE_MONITOR));
    let swap = k.position(|op| matches!(op, Op::Swap { .. }));
    let detached = k.position(|op| *op == Op::Detach);
    let freed = k.position(|op| *op == Op::FreeHook(old[0]));
    assert!(
        written < mode && mode < swap && swap < detached && detached < freed,
        "{:?}",
        k.ops
    );
    assert!(
        !k.ops.contains(&Op::FreeHook(new[0])),
        "the running version's slot is kept"
    );
    assert_eq!(
        k.ops[swap],
        Op::Swap {
            removed: old,
            added: new.clone()
        },
        "one swap takes the old slots out and puts the new ones in"
    );
    assert_eq!(k.listed_slots(), new);
}

#[test]
fn a_failed_prepare_changes_nothing_in_the_kernel() {
    let mut f = Fixture::new("prepare");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let old = f.slots_of("p");
    f.kernel_mut().ops.clear();
    f.kernel_mut().fail_next_hook = true;
    f.write("p.yaml", &policy("p", 2, MONITOR));
    f.store.rescan();
    let k = f.kernel();
    assert!(
        k.ops
            .iter()
            .all(|op| !matches!(op, Op::SetMode(..) | Op::Swap { .. })),
        "neither the mode nor the lists were touched: {:?}",
        k.ops
    );
    assert_eq!(k.listed_slots(), old);
    assert_eq!(f.kernel_mode_of("p"), MODE_ENFORCE);
    let info = &f.store.list()[0];
    assert_eq!(
        (info.state.as_str(), info.mode.as_str()),
        ("load_error", "enforce")
    );
    assert!(info.error.contains("injected"), "{info:?}");
}

#[test]
fn a_failed_switch_puts_the_old_mode_back() {
    let mut f = Fixture::new("swap");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let old = f.slots_of("p");
    f.kernel_mut().fail_next_swap = true;
    f.write("p.yaml", &policy("p", 2, MONITOR));
    f.store.rescan();
    assert_eq!(f.kernel().listed_slots(), old);
    assert_eq!(
        f.kernel_mode_of("p"),
        MODE_ENFORCE,
        "the mode of the version that runs"
    );
    assert_eq!(f.entry("p").state, State::LoadError);
}

#[test]
fn a_folder_that_cannot_be_trusted_changes_nothing() {
    let mut f = Fixture::new("folder");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    f.kernel_mut().ops.clear();
    fs::set_permissions(&f.dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::remove_file(f.dir.join("p.yaml")).unwrap();
    let summary = f.store.rescan();
    assert!(
        summary
            .folder_error
            .as_deref()
            .unwrap_or("")
            .contains("0777"),
        "{summary}"
    );
    assert!(f.kernel().ops.is_empty(), "{:?}", f.kernel().ops);
    assert_eq!(f.entry("p").state, State::Enabled);
    fs::set_permissions(&f.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let summary = f.store.rescan();
    assert_eq!((summary.folder_error, summary.enabled), (None, 0));
}

#[test]
fn a_rename_hands_the_running_version_over() {
    let mut f = Fixture::new("rename");
    f.write("a.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let (id, slot) = (f.entry("p").id, f.entry("p").policy_slot);
    f.kernel_mut().ops.clear();
    fs::rename(f.dir.join("a.yaml"), f.dir.join("b.yaml")).unwrap();
    f.store.rescan();
    let p = f.entry("p");
    assert_eq!((p.id, p.policy_slot), (id, slot));
    assert!(p.file.ends_with("b.yaml"));
    assert!(
        f.kernel().ops.iter().all(|op| match op {
            Op::Swap { removed, added } => removed.is_empty() == added.is_empty(),
            _ => true,
        }),
        "never a swap that only removes: {:?}",
        f.kernel().ops
    );
}

#[test]
fn run_time_modes_outlive_a_delete_then_create() {
    let mut f = Fixture::new("runtime");
    let key = PolicyKey::new("", "p");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    f.store.set_mode(&key, "monitor").unwrap();
    fs::remove_file(f.dir.join("p.yaml")).unwrap();
    f.store.rescan();
    assert!(f.store.entries.is_empty());
    f.write("q.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let info = f.store.get(&key).unwrap();
    assert_eq!(
        (info.mode.as_str(), info.mode_source.as_str()),
        ("monitor", "runtime")
    );
    assert_eq!(f.kernel_mode_of("p"), MODE_MONITOR);
}

#[test]
fn a_mode_that_cannot_be_stored_is_refused_and_changes_nothing() {
    let mut f = Fixture::new("store");
    let key = PolicyKey::new("", "p");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    fs::remove_dir_all(f.root.join("state")).unwrap();
    fs::write(
        f.root.join("state"),
        "a file where the state folder should be",
    )
    .unwrap();
    let err = f.store.set_mode(&key, "monitor").unwrap_err();
    assert!(err.to_string().contains("not stored"), "{err}");
    assert_eq!(f.kernel_mode_of("p"), MODE_ENFORCE);
    assert_eq!(f.store.get(&key).unwrap().mode, "enforce");
}

#[test]
fn a_second_file_for_a_loaded_policy_is_refused_naming_the_first() {
    let mut f = Fixture::new("dup");
    f.write("a.yaml", &policy("p", 1, ""));
    f.store.rescan();
    f.write("b.yaml", &policy("p", 2, ""));
    let summary = f.store.rescan();
    assert_eq!((summary.enabled, summary.errors), (1, 1));
    let b = &f.store.entries[&f.dir.join("b.yaml")];
    assert!(
        b.error.as_deref().unwrap_or("").contains("a.yaml"),
        "{:?}",
        b.error
    );
}

#[test]
fn events_still_in_the_ring_of_a_removed_or_replaced_version_keep_their_policy() {
    let mut f = Fixture::new("retired");
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let first = f.slots_of("p")[0];
    let policy_slot = f.entry("p").policy_slot;
    f.write("p.yaml", &policy("p", 2, ""));
    f.store.rescan();
    let second = f.slots_of("p")[0];
    let name_of = |store: &Store<FakeKernel>, hook| {
        store
            .hook_meta(policy_slot, hook)
            .map(|m| m.policy_name.clone())
    };
    assert_eq!(name_of(&f.store, first).as_deref(), Some("p"), "replaced");
    fs::remove_file(f.dir.join("p.yaml")).unwrap();
    f.store.rescan();
    assert_eq!(name_of(&f.store, second).as_deref(), Some("p"), "removed");
    assert!(
        f.store.hook_meta(policy_slot + 1, second).is_none(),
        "another policy slot's event is not this hook's"
    );
}

#[test]
fn a_hook_slot_used_again_describes_its_new_hook_only() {
    let mut f = Fixture::new("reused");
    f.store.hook_slots = crate::sensors::install::SlotAllocator::new(1);
    f.write("p.yaml", &policy("p", 1, ""));
    f.store.rescan();
    let slot = f.slots_of("p")[0];
    let old_policy = f.entry("p").policy_slot;
    fs::remove_file(f.dir.join("p.yaml")).unwrap();
    f.store.rescan();
    f.write("q.yaml", &policy("q", 1, ""));
    f.store.rescan();
    assert_eq!(f.slots_of("q"), vec![slot]);
    let new_policy = f.entry("q").policy_slot;
    assert!(f.store.hook_meta(old_policy, slot).is_none());
    let meta = f.store.hook_meta(new_policy, slot).expect("q's hook");
    assert_eq!(meta.policy_name, "q");
}
