//! The policy store: every policy file of the folder, what was loaded from
//! it, its mode and where the mode came from.
//!
//! A rescan compares each file (and sidecar) with what was loaded from it and
//! only touches what changed. A file that fails keeps its last good version
//! enforced; a second file defining a loaded policy is refused.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
};

use tetragond_ebpf::{MODE_ENFORCE, MODE_MONITOR};

use crate::{
    api::{ApiError, PolicyInfo},
    compile::{self, FormatSource},
    events::HookMeta,
    namespaces::NamespaceMap,
    policy::{self, EffectiveMode, Mode, Resolved},
    runtime_state::{self, RuntimeState},
    sensors::{
        install::{self, Installed, SlotAllocator},
        memory, Kernel,
    },
};

/// (namespace, name); namespace empty for a global policy.
pub type PolicyKey = (String, String);

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
    /// Contents of the YAML and sidecar last looked at.
    fingerprint: String,
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

pub struct Store {
    dir: PathBuf,
    kernel: Kernel,
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
    hook_metas: HashMap<u32, (u32, HookMeta)>,
}

/// Outcome of a rescan, for logs and sd_notify STATUS.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub enabled: usize,
    pub errors: usize,
    pub disabled: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} policies enabled, {} with errors, {} disabled",
            self.enabled, self.errors, self.disabled
        )
    }
}

impl Store {
    pub fn new(
        dir: PathBuf,
        state_dir: PathBuf,
        kernel: Kernel,
        formats: Box<dyn FormatSource + Send>,
    ) -> Self {
        let runtime = load_runtime_state(&state_dir);
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
        }
    }

    /// The namespace -> cgroup mapping that scopes namespaced policies.
    pub fn with_namespaces(mut self, namespaces: NamespaceMap) -> Self {
        self.namespaces = namespaces;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Brings the kernel in line with the folder.
    pub fn rescan(&mut self) -> Summary {
        let files = self.policy_files();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !files.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.remove_file(&path);
        }
        for (path, fingerprint) in files {
            let unchanged = self
                .entries
                .get(&path)
                .is_some_and(|e| e.fingerprint == fingerprint);
            if !unchanged {
                self.load_file(&path, fingerprint);
            }
        }
        self.summary()
    }

    /// Re-reads every file, even unchanged ones (reload).
    pub fn rescan_all(&mut self) -> Summary {
        for e in self.entries.values_mut() {
            e.fingerprint.clear();
        }
        self.rescan()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for e in self.entries.values() {
            match e.state {
                State::Enabled => s.enabled += 1,
                State::LoadError => s.errors += 1,
                State::Disabled => s.disabled += 1,
            }
        }
        s
    }

    /// Policy files with their YAML + sidecar contents.
    fn policy_files(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let Ok(dir) = fs::read_dir(&self.dir) else {
            tracing::warn!("cannot read policy folder {}", self.dir.display());
            return out;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if !policy::is_policy_file(&path) || !path.is_file() {
                continue;
            }
            let yaml = fs::read_to_string(&path).unwrap_or_default();
            let sidecar = fs::read_to_string(policy::sidecar_path(&path)).unwrap_or_default();
            out.insert(path, format!("{yaml}\0{sidecar}"));
        }
        out
    }

    fn remove_file(&mut self, path: &Path) {
        let Some(entry) = self.entries.remove(path) else {
            return;
        };
        if let Some(installed) = &entry.installed {
            self.uninstall(installed);
        }
        self.policy_slots.give_back(entry.policy_slot);
        if let Some(key) = &entry.key {
            // The policy is gone: so is what operators set on it.
            let k = runtime_key(key);
            if self.runtime.modes.remove(&k).is_some() | self.runtime.enabled.remove(&k).is_some() {
                self.persist();
            }
            tracing::info!(policy = %key.1, file = %path.display(), "policy unloaded");
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
            fingerprint: String::new(),
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

    fn load_file(&mut self, path: &Path, fingerprint: String) {
        let mut entry = match self.entries.remove(path) {
            Some(e) => e,
            None => match self.new_entry(path) {
                Some(e) => e,
                None => return,
            },
        };
        entry.fingerprint = fingerprint;
        if let Err(message) = self.apply(&mut entry) {
            tracing::error!(file = %path.display(), "{message}");
            entry.state = State::LoadError;
            entry.error = Some(message);
        }
        self.entries.insert(path.to_path_buf(), entry);
    }

    /// Parses, compiles and installs the file's current contents. On error
    /// the entry keeps its previous installed version.
    fn apply(&mut self, entry: &mut Entry) -> Result<(), String> {
        let tp = policy::load_policy_file(&entry.file).map_err(|e| e.to_string())?;
        let key = policy::key(&tp);
        if let Some(other) = self.entries.values().find(|e| e.key.as_ref() == Some(&key)) {
            return Err(format!(
                "policy {} is already defined in {}",
                describe(&key),
                other.file.display()
            ));
        }
        let sidecar = policy::load_sidecar(&entry.file).map_err(|e| e.to_string())?;
        let policy_mode = policy::policy_mode(&tp).map_err(|e| e.to_string())?;
        let has_enforcement = policy::has_enforcement_action(&tp);
        let sidecar_mode = sidecar.as_ref().and_then(|s| s.mode);
        if entry.key.as_ref().is_some_and(|k| k != &key) {
            // The file now defines another policy: the old one is gone.
            self.unload(entry);
        }
        entry.key = Some(key.clone());
        let enabled = self
            .runtime
            .enabled
            .get(&runtime_key(&key))
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
        let mut compiled =
            compile::compile(&tp, self.formats.as_ref()).map_err(|e| e.to_string())?;
        if tp.is_namespaced() {
            let scopes = self.namespaces.scopes(&key.0).map_err(|e| e.to_string())?;
            compiled.scope_to(&scopes);
        }
        let resolved = policy::resolve(
            policy_mode,
            sidecar_mode,
            self.runtime.mode(&runtime_key(&key)),
            has_enforcement,
        );
        if let Some(w) = &resolved.warning {
            tracing::warn!(policy = %key.1, "{w}");
        }
        // Mode first: the new hooks must never run under a stale mode.
        self.kernel
            .set_mode(entry.policy_slot, kernel_mode(resolved.mode))
            .map_err(|e| e.to_string())?;
        let installed = install::replace(
            &mut self.kernel,
            &mut self.hook_slots,
            entry.policy_slot,
            &compiled,
            entry.installed.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(policy = %key.1, mode = %resolved.mode, source = %resolved.source, file = %entry.file.display(), "policy loaded");
        if let Some(old) = &entry.installed {
            self.forget_hooks(old);
        }
        for hook in &installed.hooks {
            self.hook_metas
                .insert(hook.slot, (entry.policy_slot, hook.meta.clone()));
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
            self.hook_metas.remove(&hook.slot);
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
                describe(key),
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
        self.kernel
            .set_mode(slot, kernel_mode(new.mode))
            .map_err(|e| ApiError::Failed(e.to_string()))?;
        self.runtime
            .modes
            .insert(runtime_key(key), mode.to_string());
        self.persist();
        if let Some(entry) = self.find_mut(key) {
            entry.resolved = Some(new);
        }
        tracing::info!(policy = %key.1, from = %resolved.mode, to = %mode, "mode set at run time");
        Ok(())
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
        if self.runtime.modes.remove(&runtime_key(key)).is_some() {
            self.persist();
        }
        if loaded {
            let new = policy::resolve(policy_mode, sidecar_mode, None, has_enforcement);
            self.kernel
                .set_mode(slot, kernel_mode(new.mode))
                .map_err(|e| ApiError::Failed(e.to_string()))?;
            if let Some(entry) = self.find_mut(key) {
                entry.resolved = Some(new);
            }
        }
        tracing::info!(policy = %key.1, "run-time mode reset");
        Ok(())
    }

    /// Enables or disables a policy at run time, over its sidecar.
    pub fn set_enabled(&mut self, key: &PolicyKey, enabled: bool) -> Result<(), ApiError> {
        let entry = self.find_mut(key).ok_or_else(|| not_found(key))?;
        // Re-read the file on the next rescan, with the new setting.
        entry.fingerprint.clear();
        self.runtime.enabled.insert(runtime_key(key), enabled);
        self.persist();
        self.rescan();
        tracing::info!(policy = %key.1, enabled, "enabled set at run time");
        Ok(())
    }

    pub fn get(&self, key: &PolicyKey) -> Result<PolicyInfo, ApiError> {
        let entry = self
            .entries
            .values()
            .find(|e| e.key.as_ref() == Some(key))
            .ok_or_else(|| not_found(key))?;
        let total_hooks = self.installed_hooks().max(1);
        Ok(self.info(entry, memory::bpf_memlock_total(), total_hooks))
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
    pub fn hook_meta(&self, policy_slot: u32, hook_slot: u32) -> Option<&HookMeta> {
        self.hook_metas
            .get(&hook_slot)
            .filter(|(owner, _)| *owner == policy_slot)
            .map(|(_, meta)| meta)
    }

    pub fn list(&self) -> Vec<PolicyInfo> {
        let total_hooks: usize = self.installed_hooks().max(1);
        let memory = memory::bpf_memlock_total();
        self.entries
            .values()
            .map(|e| self.info(e, memory, total_hooks))
            .collect()
    }

    fn installed_hooks(&self) -> usize {
        self.entries
            .values()
            .filter_map(|e| e.installed.as_ref())
            .map(|i| i.hooks.len())
            .sum()
    }

    fn info(&self, e: &Entry, memory: u64, total_hooks: usize) -> PolicyInfo {
        let (namespace, name) = e.key.clone().unwrap_or_default();
        let filter_id = self.namespaces.filter_id(&namespace);
        let counters = self.kernel.counters(e.policy_slot).unwrap_or_default();
        let hooks = e.installed.as_ref().map_or(0, |i| i.hooks.len());
        // Programs and maps are shared: each policy is charged its share by hooks.
        let kernel_memory = memory * hooks as u64 / total_hooks as u64;
        let (mode, mode_source) = match (&e.resolved, e.installed.is_some()) {
            (Some(r), true) => (r.mode.to_string(), r.source.to_string()),
            _ => ("unknown".to_string(), String::new()),
        };
        PolicyInfo {
            id: e.id,
            name: if name.is_empty() {
                file_stem(&e.file)
            } else {
                name
            },
            namespace,
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
            error: e.error.clone().unwrap_or_default(),
            file: e.file.display().to_string(),
        }
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

fn runtime_key(key: &PolicyKey) -> String {
    runtime_state::key_string(&key.0, &key.1)
}

fn not_found(key: &PolicyKey) -> ApiError {
    ApiError::NotFound(format!("policy {} not found", describe(key)))
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

pub fn describe(key: &PolicyKey) -> String {
    if key.0.is_empty() {
        key.1.clone()
    } else {
        format!("{}/{}", key.0, key.1)
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
