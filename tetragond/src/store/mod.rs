//! The policy store: every policy file of the folder, what was loaded from
//! it, its mode and where the mode came from.
//!
//! A rescan compares each file (and sidecar) with what was loaded from it and
//! only touches what changed. A file that fails keeps its last good version
//! enforced; a second file defining a loaded policy is refused. A folder that
//! cannot be read changes nothing. A policy whose file is renamed keeps its
//! kernel slots without a gap; its run-time settings outlive a delete for
//! [`RUNTIME_GRACE`], so an editor's save or delete-then-create keeps them.

pub mod folder;
mod last_good;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tetragond_ebpf::{MODE_ENFORCE, MODE_MONITOR};

use crate::{
    api::{ApiError, PolicyInfo},
    compile::{self, FormatSource, HookMeta},
    namespaces::NamespaceMap,
    policy::{self, EffectiveMode, Mode, PolicyError, PolicyKey, Resolved},
    runtime_state::RuntimeState,
    sensors::{
        install::{self, Installed, SlotAllocator},
        memory,
        ops::KernelOps,
        Kernel,
    },
};

use folder::{Snapshot, Trust};
use last_good::LastGood;

/// How long the run-time settings of a policy whose file went away are kept
/// for a file that defines it again (editor saves, `mv`, delete + create).
pub const RUNTIME_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Enabled,
    Disabled,
    LoadError,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "enabled",
            State::Disabled => "disabled",
            State::LoadError => "load_error",
        }
    }
}

/// What one policy file holds now.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub file: PathBuf,
    /// Of the YAML and sidecar last looked at; None forces a re-read.
    fingerprint: Option<u64>,
    /// Known once the file parsed at least once.
    pub key: Option<PolicyKey>,
    pub state: State,
    pub error: Option<String>,
    pub policy_mode: Option<Mode>,
    pub sidecar_mode: Option<Mode>,
    pub has_enforcement: bool,
    pub resolved: Option<Resolved>,
    pub sensors: Vec<String>,
    pub policy_slot: u32,
    pub installed: Option<Installed>,
}

/// `K` is the kernel: [`Kernel`] in the daemon, a fake in unit tests.
pub struct Store<K: KernelOps = Kernel> {
    dir: PathBuf,
    kernel: K,
    formats: Box<dyn FormatSource + Send>,
    entries: BTreeMap<PathBuf, Entry>,
    state_dir: PathBuf,
    runtime: RuntimeState,
    namespaces: NamespaceMap,
    policy_slots: SlotAllocator,
    hook_slots: SlotAllocator,
    next_id: u64,
    /// Hook slot -> (policy slot, event metadata) of what is installed now,
    /// so decorating an event is one lookup, not a walk over every policy.
    hook_metas: HashMap<u32, (u32, Arc<HookMeta>)>,
    /// The same, of hooks taken out of the kernel: an event they posted may
    /// still be in the ring buffer, unread. Kept until the slot is used
    /// again, which the allocator delays (it hands out the slot freed
    /// longest ago), so at most one entry per hook slot.
    retired_hook_metas: HashMap<u32, (u32, Arc<HookMeta>)>,
    trust: Trust,
    /// Why the last scan could not read the folder; None when it could.
    folder_error: Option<String>,
    /// Entries whose file went away in the scan being applied: a new file
    /// defining the same policy takes over their kernel slots.
    departed: Vec<Entry>,
    /// Run-time keys whose policy went away, and when.
    forgotten: HashMap<String, Instant>,
    last_good: LastGood,
}

/// Outcome of a rescan, for logs and sd_notify STATUS.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub enabled: usize,
    pub errors: usize,
    pub disabled: usize,
    /// The folder could not be read: nothing was changed.
    pub folder_error: Option<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} policies enabled, {} with errors, {} disabled",
            self.enabled, self.errors, self.disabled
        )?;
        match &self.folder_error {
            Some(e) => write!(f, "; {e}; nothing changed, retrying"),
            None => Ok(()),
        }
    }
}

impl<K: KernelOps> Store<K> {
    pub fn new(
        dir: PathBuf,
        state_dir: PathBuf,
        kernel: K,
        formats: Box<dyn FormatSource + Send>,
    ) -> Self {
        let runtime = load_runtime_state(&state_dir);
        let last_good = LastGood::new(&state_dir);
        Store {
            dir,
            kernel,
            formats,
            entries: BTreeMap::new(),
            state_dir,
            runtime,
            namespaces: NamespaceMap::default(),
            policy_slots: SlotAllocator::policies(),
            hook_slots: SlotAllocator::hooks(),
            next_id: 1,
            hook_metas: HashMap::new(),
            retired_hook_metas: HashMap::new(),
            trust: Trust::of_this_process(folder::DEFAULT_MAX_FILE_SIZE),
            folder_error: None,
            departed: Vec::new(),
            forgotten: HashMap::new(),
            last_good,
        }
    }

    /// Whose files are trusted and how large they may be.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    pub fn folder_error(&self) -> Option<&str> {
        self.folder_error.as_deref()
    }

    /// The namespace -> cgroup mapping that scopes namespaced policies.
    pub fn with_namespaces(mut self, namespaces: NamespaceMap) -> Self {
        self.namespaces = namespaces;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Brings the kernel in line with the folder. When the folder cannot be
    /// read, nothing changes and the summary says why.
    pub fn rescan(&mut self) -> Summary {
        let files = match folder::scan(&self.dir, &self.trust) {
            Ok(files) => files,
            Err(e) => {
                let message = e.to_string();
                if self.folder_error.as_ref() != Some(&message) {
                    tracing::error!("{message}; nothing changed, retrying");
                }
                self.folder_error = Some(message);
                return self.summary();
            }
        };
        if self.folder_error.take().is_some() {
            tracing::info!(dir = %self.dir.display(), "policy folder readable again");
        }
        self.expire_forgotten();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !files.contains_key(*p))
            .cloned()
            .collect();
        // Held back until the new files are loaded: a rename hands over.
        self.departed = gone.iter().filter_map(|p| self.entries.remove(p)).collect();
        for (path, snapshot) in &files {
            let fingerprint = snapshot.fingerprint();
            let unchanged = self
                .entries
                .get(path)
                .is_some_and(|e| e.fingerprint == Some(fingerprint));
            if !unchanged {
                self.load_file(path, snapshot, fingerprint);
            }
        }
        for entry in std::mem::take(&mut self.departed) {
            self.remove_entry(entry);
        }
        self.forget_orphaned_runtime();
        self.summary()
    }

    /// Re-reads every file, even unchanged ones (reload).
    pub fn rescan_all(&mut self) -> Summary {
        for e in self.entries.values_mut() {
            e.fingerprint = None;
        }
        self.rescan()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            folder_error: self.folder_error.clone(),
            ..Summary::default()
        };
        for e in self.entries.values() {
            match e.state {
                State::Enabled => s.enabled += 1,
                State::LoadError => s.errors += 1,
                State::Disabled => s.disabled += 1,
            }
        }
        s
    }

    /// A file that fails with no version of it running (the daemon just
    /// started) runs its last good version, if one was kept; returns the
    /// error to list, saying which version runs.
    fn fall_back(&mut self, entry: &mut Entry, message: String) -> String {
        if entry.installed.is_some() || entry.key.is_some() {
            return message;
        }
        let Some(stored) = self.last_good.load(&entry.file) else {
            return message;
        };
        match self.apply(entry, &stored.snapshot) {
            Ok(()) if entry.state == State::Enabled => {
                let since_epoch = stored
                    .saved
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let when = crate::clock::rfc3339_nanos(i128::try_from(since_epoch).unwrap_or(0));
                tracing::warn!(file = %entry.file.display(), "running its last good version, of {when}");
                format!("{message}; running the last good version, of {when}")
            }
            Ok(()) => message,
            Err(e) => format!("{message}; its last good version fails too: {e}"),
        }
    }

    fn remove_entry(&mut self, entry: Entry) {
        if let Some(installed) = &entry.installed {
            self.uninstall(installed);
        }
        self.policy_slots.give_back(entry.policy_slot);
        if !self.entries.values().any(|e| e.file == entry.file) {
            self.last_good.remove(&entry.file);
        }
        if let Some(key) = &entry.key {
            // Kept a while: the file may come back under this or another name.
            self.forgotten.insert(key.runtime_key(), Instant::now());
            tracing::info!(policy = %key.name(), file = %entry.file.display(), "policy unloaded");
        }
    }

    /// Run-time settings of no loaded policy (gone while the daemon was
    /// down) start their grace now.
    fn forget_orphaned_runtime(&mut self) {
        let held: std::collections::HashSet<String> = self
            .entries
            .values()
            .filter_map(|e| e.key.as_ref())
            .map(PolicyKey::runtime_key)
            .collect();
        let orphans: Vec<String> = (self.runtime.modes.keys())
            .chain(self.runtime.enabled.keys())
            .filter(|k| !held.contains(*k) && !self.forgotten.contains_key(*k))
            .cloned()
            .collect();
        let now = Instant::now();
        for k in orphans {
            self.forgotten.insert(k, now);
        }
    }

    /// The compile a load runs, without touching the kernel: AddPolicy
    /// refuses what the folder would refuse. `file` and `yaml` place the
    /// error.
    pub fn check(
        &self,
        tp: &policy::TracingPolicy,
        file: &Path,
        yaml: &str,
    ) -> Result<(), PolicyError> {
        self.compile(tp, file, yaml).map(drop)
    }

    /// The policy compiled, and scoped to its namespace's cgroups; an
    /// error is placed in `file` (whose text is `yaml`): at its hook or
    /// selector, or at `metadata.namespace` for the scope.
    fn compile(
        &self,
        tp: &policy::TracingPolicy,
        file: &Path,
        yaml: &str,
    ) -> Result<compile::CompiledPolicy, PolicyError> {
        let mut compiled = compile::compile(tp, self.formats.as_ref())
            .map_err(|e| compile::located(&e, tp, file, yaml))?;
        if tp.is_namespaced() {
            let scopes = self.namespaces.scopes(tp.namespace()).map_err(|e| {
                let path = policy::NodePath::root().key("metadata").key("namespace");
                let at = policy::Positions::index(yaml).find(&path, policy::Part::Value);
                PolicyError::located(file, at.line, at.column, e.to_string())
            })?;
            compiled.scope_to(&scopes);
        }
        Ok(compiled)
    }

    /// Drops the run-time settings of policies gone for longer than the grace.
    pub fn expire_forgotten(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .forgotten
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= RUNTIME_GRACE)
            .map(|(k, _)| k.clone())
            .collect();
        let mut changed = false;
        for k in expired {
            self.forgotten.remove(&k);
            changed |=
                self.runtime.modes.remove(&k).is_some() | self.runtime.enabled.remove(&k).is_some();
        }
        if changed {
            self.persist();
        }
    }

    fn new_entry(&mut self, path: &Path) -> Option<Entry> {
        let Some(policy_slot) = self.policy_slots.take() else {
            tracing::error!("no free policy slot for {}", path.display());
            return None;
        };
        if let Err(e) = self.kernel.reset_counters(policy_slot) {
            tracing::warn!("resetting counters: {e}");
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(Entry {
            id,
            file: path.to_path_buf(),
            fingerprint: None,
            key: None,
            state: State::LoadError,
            error: None,
            policy_mode: None,
            sidecar_mode: None,
            has_enforcement: false,
            resolved: None,
            sensors: vec![],
            policy_slot,
            installed: None,
        })
    }

    fn load_file(&mut self, path: &Path, snapshot: &Snapshot, fingerprint: u64) {
        let mut entry = match self.entries.remove(path) {
            Some(e) => e,
            None => match self.new_entry(path) {
                Some(e) => e,
                None => return,
            },
        };
        entry.fingerprint = Some(fingerprint);
        match self.apply(&mut entry, snapshot) {
            Ok(()) => self.last_good.save(path, snapshot),
            Err(message) => {
                tracing::error!(file = %path.display(), "{message}");
                let message = self.fall_back(&mut entry, message);
                entry.state = State::LoadError;
                entry.error = Some(message);
            }
        }
        self.entries.insert(path.to_path_buf(), entry);
    }

    /// Parses, compiles and installs the file's current contents. The new
    /// version is prepared in full (slots written, programs attached) before
    /// it is switched in; on any error the kernel and the entry keep the
    /// version and mode they had.
    fn apply(&mut self, entry: &mut Entry, snapshot: &Snapshot) -> Result<(), String> {
        let yaml = snapshot.yaml.as_ref().map_err(ToString::to_string)?;
        let tp = policy::parse_policy(&entry.file, yaml).map_err(|e| e.to_string())?;
        let key = PolicyKey::of(&tp);
        if let Some(other) = self.entries.values().find(|e| e.key.as_ref() == Some(&key)) {
            return Err(format!(
                "policy {} is already defined in {}",
                key,
                other.file.display()
            ));
        }
        let sidecar = match &snapshot.sidecar {
            Ok(Some(text)) => Some(
                policy::parse_sidecar(&policy::sidecar_path(&entry.file), text)
                    .map_err(|e| e.to_string())?,
            ),
            Ok(None) => None,
            Err(e) => return Err(e.to_string()),
        };
        let policy_mode = policy::policy_mode(&tp).map_err(|e| e.to_string())?;
        let has_enforcement = policy::has_enforcement_action(&tp);
        let sidecar_mode = sidecar.as_ref().and_then(|s| s.mode);
        self.take_over_departed(entry, &key);
        self.forgotten.remove(&key.runtime_key());
        if entry.key.as_ref().is_some_and(|k| k != &key) {
            // The file now defines another policy: the old one is gone.
            self.unload(entry);
        }
        entry.key = Some(key.clone());
        let enabled = self
            .runtime
            .enabled
            .get(&key.runtime_key())
            .copied()
            .or(sidecar.as_ref().and_then(|s| s.enabled))
            .unwrap_or(true);
        if !enabled {
            self.unload(entry);
            entry.state = State::Disabled;
            entry.error = None;
            entry.resolved = None;
            return Ok(());
        }
        let compiled = self
            .compile(&tp, &entry.file, yaml)
            .map_err(|e| e.to_string())?;
        let resolved = policy::resolve(
            policy_mode,
            sidecar_mode,
            self.runtime.mode(&key.runtime_key()),
            has_enforcement,
        );
        if let Some(w) = &resolved.warning {
            tracing::warn!(policy = %key.name(), "{w}");
        }
        let installed = self.switch_in(entry, &compiled, kernel_mode(resolved.mode))?;
        tracing::info!(policy = %key.name(), mode = %resolved.mode, source = %resolved.source, file = %entry.file.display(), "policy loaded");
        if let Some(old) = &entry.installed {
            self.forget_hooks(old);
        }
        for hook in &installed.hooks {
            self.retired_hook_metas.remove(&hook.slot);
            self.hook_metas
                .insert(hook.slot, (entry.policy_slot, Arc::new(hook.meta.clone())));
        }
        entry.installed = Some(installed);
        entry.sensors = compiled.sensors;
        entry.policy_mode = policy_mode;
        entry.sidecar_mode = sidecar_mode;
        entry.has_enforcement = has_enforcement;
        entry.resolved = Some(resolved);
        entry.state = State::Enabled;
        entry.error = None;
        Ok(())
    }

    /// Prepare, set the mode, commit; on failure the old version runs on
    /// under its old mode.
    fn switch_in(
        &mut self,
        entry: &Entry,
        compiled: &compile::CompiledPolicy,
        mode: u32,
    ) -> Result<Installed, String> {
        let slot = entry.policy_slot;
        let old_mode = entry
            .installed
            .as_ref()
            .and(entry.resolved.as_ref())
            .map(|r| kernel_mode(r.mode));
        let prepared = install::prepare(&mut self.kernel, &mut self.hook_slots, slot, compiled)
            .map_err(|e| e.to_string())?;
        // Set right before the switch: the new hooks never run under a
        // stale mode, and nothing before this point touched the old version.
        if let Err(e) = self.kernel.set_mode(slot, mode) {
            install::abort(&mut self.kernel, &mut self.hook_slots, &prepared);
            return Err(e.to_string());
        }
        install::commit(
            &mut self.kernel,
            &mut self.hook_slots,
            prepared,
            entry.installed.as_ref(),
        )
        .map_err(|e| {
            if let Some(old) = old_mode {
                if let Err(e) = self.kernel.set_mode(slot, old) {
                    tracing::error!("restoring the mode of policy slot {slot}: {e}");
                }
            }
            e.to_string()
        })
    }

    /// A policy whose file went away in this scan (a rename, an editor's
    /// save) hands its kernel slots to the new file: no gap, same counters.
    fn take_over_departed(&mut self, entry: &mut Entry, key: &PolicyKey) {
        if entry.key.is_some() || entry.installed.is_some() {
            return;
        }
        let Some(i) = self
            .departed
            .iter()
            .position(|d| d.key.as_ref() == Some(key))
        else {
            return;
        };
        let old = self.departed.swap_remove(i);
        self.policy_slots.give_back(entry.policy_slot);
        entry.id = old.id;
        entry.policy_slot = old.policy_slot;
        entry.installed = old.installed;
        entry.resolved = old.resolved;
        entry.sensors = old.sensors;
        entry.policy_mode = old.policy_mode;
        entry.sidecar_mode = old.sidecar_mode;
        entry.has_enforcement = old.has_enforcement;
        tracing::info!(policy = %key.name(), from = %old.file.display(), to = %entry.file.display(), "policy file renamed");
    }

    fn unload(&mut self, entry: &mut Entry) {
        if let Some(installed) = entry.installed.take() {
            self.uninstall(&installed);
        }
    }

    /// Takes a policy version out of the kernel and out of `hook_metas`.
    fn uninstall(&mut self, installed: &Installed) {
        install::remove(&mut self.kernel, &mut self.hook_slots, installed);
        self.forget_hooks(installed);
    }

    fn forget_hooks(&mut self, installed: &Installed) {
        for hook in &installed.hooks {
            if let Some(meta) = self.hook_metas.remove(&hook.slot) {
                self.retired_hook_metas.insert(hook.slot, meta);
            }
        }
    }

    fn find_mut(&mut self, key: &PolicyKey) -> Option<&mut Entry> {
        self.entries
            .values_mut()
            .find(|e| e.key.as_ref() == Some(key))
    }

    /// Run-time mode over the API: one map update, nothing reloaded.
    pub fn set_mode(&mut self, key: &PolicyKey, mode: &str) -> Result<(), ApiError> {
        let mode: Mode = mode
            .parse()
            .map_err(|_| ApiError::InvalidMode(format!("invalid mode: {mode:?}")))?;
        let entry = self.find_mut(key).ok_or_else(|| not_found(key))?;
        let Some(resolved) = entry.resolved.clone() else {
            return Err(ApiError::Failed(format!(
                "policy {} is not loaded ({})",
                key,
                entry.state.as_str()
            )));
        };
        if !entry.has_enforcement {
            return Err(ApiError::MonitorOnly(
                "cannot set policy mode on a policy that is monitor only".into(),
            ));
        }
        let (policy_mode, sidecar_mode, slot) =
            (entry.policy_mode, entry.sidecar_mode, entry.policy_slot);
        let new = policy::resolve(policy_mode, sidecar_mode, Some(mode), true);
        // Stored first: a mode that could not be stored would be lost at
        // the next restart, so it is refused and nothing changes.
        let mut runtime = self.runtime.clone();
        runtime.modes.insert(key.runtime_key(), mode.to_string());
        let previous = self.store_runtime(runtime)?;
        self.set_kernel_mode(slot, new.mode, previous)?;
        if let Some(entry) = self.find_mut(key) {
            entry.resolved = Some(new);
        }
        tracing::info!(policy = %key.name(), from = %resolved.mode, to = %mode, "mode set at run time");
        Ok(())
    }

    /// Writes `runtime` to the state folder, then keeps it; returns the
    /// settings it replaced.
    fn store_runtime(&mut self, runtime: RuntimeState) -> Result<RuntimeState, ApiError> {
        runtime.save(&self.state_dir).map_err(|e| {
            ApiError::Failed(format!("run-time setting not stored, nothing changed: {e}"))
        })?;
        Ok(std::mem::replace(&mut self.runtime, runtime))
    }

    /// One map update; on failure the `previous` settings are put back.
    fn set_kernel_mode(
        &mut self,
        slot: u32,
        mode: EffectiveMode,
        previous: RuntimeState,
    ) -> Result<(), ApiError> {
        self.kernel.set_mode(slot, kernel_mode(mode)).map_err(|e| {
            self.runtime = previous;
            self.persist();
            ApiError::Failed(e.to_string())
        })
    }

    /// Drops the run-time mode: the sidecar's or the policy's applies again.
    pub fn reset_mode(&mut self, key: &PolicyKey) -> Result<(), ApiError> {
        let entry = self.find_mut(key).ok_or_else(|| not_found(key))?;
        let (policy_mode, sidecar_mode, has_enforcement, slot) = (
            entry.policy_mode,
            entry.sidecar_mode,
            entry.has_enforcement,
            entry.policy_slot,
        );
        let loaded = entry.resolved.is_some();
        let mut runtime = self.runtime.clone();
        runtime.modes.remove(&key.runtime_key());
        let previous = self.store_runtime(runtime)?;
        if loaded {
            let new = policy::resolve(policy_mode, sidecar_mode, None, has_enforcement);
            self.set_kernel_mode(slot, new.mode, previous)?;
            if let Some(entry) = self.find_mut(key) {
                entry.resolved = Some(new);
            }
        }
        tracing::info!(policy = %key.name(), "run-time mode reset");
        Ok(())
    }

    /// Enables or disables a policy at run time, over its sidecar.
    pub fn set_enabled(&mut self, key: &PolicyKey, enabled: bool) -> Result<(), ApiError> {
        let entry = self.find_mut(key).ok_or_else(|| not_found(key))?;
        // Re-read the file on the next rescan, with the new setting.
        entry.fingerprint = None;
        let mut runtime = self.runtime.clone();
        runtime.enabled.insert(key.runtime_key(), enabled);
        self.store_runtime(runtime)?;
        self.rescan();
        tracing::info!(policy = %key.name(), enabled, "enabled set at run time");
        Ok(())
    }

    pub fn get(&self, key: &PolicyKey) -> Result<PolicyInfo, ApiError> {
        let entry = self
            .entries
            .values()
            .find(|e| e.key.as_ref() == Some(key))
            .ok_or_else(|| not_found(key))?;
        Ok(self.info(entry))
    }

    fn persist(&self) {
        if let Err(e) = self.runtime.save(&self.state_dir) {
            tracing::error!("run-time settings not saved: {e}");
        }
    }

    pub fn file_of(&self, key: &PolicyKey) -> Option<PathBuf> {
        self.entries
            .values()
            .find(|e| e.key.as_ref() == Some(key))
            .map(|e| e.file.clone())
    }

    /// Event decoration: which policy and hook a kernel slot belongs to.
    /// Shared: an event's export holds it while the daemon does the rest.
    /// What describes the events of a hook: installed now, or taken out
    /// with events of it possibly still unread.
    pub fn hook_meta(&self, policy_slot: u32, hook_slot: u32) -> Option<&Arc<HookMeta>> {
        [&self.hook_metas, &self.retired_hook_metas]
            .into_iter()
            .find_map(|metas| metas.get(&hook_slot))
            .filter(|(owner, _)| *owner == policy_slot)
            .map(|(_, meta)| meta)
    }

    pub fn list(&self) -> Vec<PolicyInfo> {
        self.entries.values().map(|e| self.info(e)).collect()
    }

    fn info(&self, e: &Entry) -> PolicyInfo {
        let key = e.key.clone().unwrap_or_default();
        let filter_id = self.namespaces.filter_id(key.namespace());
        let counters = self.kernel.counters(e.policy_slot).unwrap_or_default();
        // Its own slots and entries; the programs and the maps' capacity
        // are shared, shown once (`tetra status`).
        let kernel_memory = e.installed.as_ref().map_or(0, memory::policy_bytes);
        let (mode, mode_source) = match (&e.resolved, e.installed.is_some()) {
            (Some(r), true) => (r.mode.to_string(), r.source.to_string()),
            _ => ("unknown".to_string(), String::new()),
        };
        PolicyInfo {
            id: e.id,
            name: if key.name().is_empty() {
                file_stem(&e.file)
            } else {
                key.name().to_string()
            },
            namespace: key.namespace().to_string(),
            domain: "static".into(),
            state: e.state.as_str().into(),
            filter_id,
            sensors: e.sensors.clone(),
            kernel_memory,
            mode,
            mode_source,
            npost: counters.post,
            nenforce: counters.enforce,
            nmonitor: counters.monitor,
            nratelimited: counters.rate_limited,
            error: e.error.clone().unwrap_or_default(),
            file: e.file.display().to_string(),
        }
    }

    /// (policy slot, policy name, events its Post `rateLimit` kept in the
    /// kernel) of each installed policy that kept any.
    pub fn rate_limited(&self) -> Vec<(u32, String, u64)> {
        self.entries
            .values()
            .filter(|e| e.installed.is_some())
            .filter_map(|e| {
                let total = self.kernel.counters(e.policy_slot).ok()?.rate_limited;
                let name = e.key.as_ref()?.name().to_string();
                (total > 0).then_some((e.policy_slot, name, total))
            })
            .collect()
    }

    /// Unloads everything (shutdown); run-time settings stay stored.
    pub fn clear(&mut self) {
        for (_, entry) in std::mem::take(&mut self.entries) {
            if let Some(installed) = &entry.installed {
                self.uninstall(installed);
            }
        }
    }
}

impl Store<Kernel> {
    /// See [`Kernel::warm_up`].
    pub fn warm_up(&mut self) {
        self.kernel.warm_up();
    }
}

fn not_found(key: &PolicyKey) -> ApiError {
    ApiError::NotFound(format!("policy {key} not found"))
}

/// A corrupt state file is set aside, not overwritten, and said loudly.
fn load_runtime_state(state_dir: &Path) -> RuntimeState {
    match RuntimeState::load(state_dir) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!("{e}; starting without run-time settings");
            let path = RuntimeState::path(state_dir);
            let _ = fs::rename(&path, path.with_extension("json.corrupt"));
            RuntimeState::default()
        }
    }
}

fn kernel_mode(mode: EffectiveMode) -> u32 {
    match mode {
        EffectiveMode::Monitor => MODE_MONITOR,
        _ => MODE_ENFORCE,
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
