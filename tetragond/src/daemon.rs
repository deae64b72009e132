//! The daemon's main loop. One task owns the policy store and the kernel;
//! folder changes, D-Bus requests, signals and kernel events all arrive here
//! and are handled in order.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use crate::{
    api::{ApiError, DaemonStatus, Request},
    compile::Tracefs,
    dbus::{self, BusChoice},
    dbus_policies::PolicyObjects,
    events::{self, Clock, EventFile},
    notify as sd, policy,
    sensors::{mounts, probe, Kernel},
    store::{PolicyKey, Store, Summary},
    watcher,
};

/// Changes arriving within this window are handled by one rescan: an editor's
/// save is several inotify events.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub bus: BusChoice,
    pub events_file: PathBuf,
}

struct Daemon {
    store: Store,
    features: Vec<(&'static str, bool)>,
    events: EventFile,
    clock: Clock,
    node_name: String,
}

pub async fn run(config: DaemonConfig) -> Result<()> {
    mounts::ensure_mounted();
    std::fs::create_dir_all(&config.policy_dir)
        .with_context(|| format!("creating policy folder {}", config.policy_dir.display()))?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state folder {}", config.state_dir.display()))?;
    let mut kernel = Kernel::load().context("loading the kernel programs")?;
    let ring = kernel.take_events()?;
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for
    // as long as the AsyncFd that owns the RingBuf lives.
    let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("polling the event ring buffer: {e}"))?;
    let events = EventFile::open(&config.events_file)
        .with_context(|| format!("opening events file {}", config.events_file.display()))?;
    let mut features = probe::probe();
    features.extend(kernel.probe_programs());
    tracing::info!("kernel features: {}", probe::describe(&features));
    let mut daemon = Daemon {
        features,
        store: Store::new(
            config.policy_dir.clone(),
            config.state_dir.clone(),
            kernel,
            Box::new(Tracefs),
        ),
        events,
        clock: Clock::now(),
        node_name: events::node_name(),
    };

    let (wake_tx, mut wake_rx) = mpsc::channel(1);
    let _watcher = watcher::watch(&config.policy_dir, wake_tx)
        .with_context(|| format!("watching {}", config.policy_dir.display()))?;
    let summary = daemon.store.rescan();
    tracing::info!("{summary}");

    let (req_tx, mut req_rx) = mpsc::channel(16);
    let bus = dbus::serve(&config.bus, req_tx)
        .await
        .context("connecting to D-Bus")?;
    let objects = PolicyObjects::new(bus.clone());
    objects.sync(daemon.store.list()).await;
    // Counters change with every event: their snapshot is refreshed this often.
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    sd::ready(&summary.to_string());
    tracing::info!(dir = %config.policy_dir.display(), "tetragond ready");

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut ring = ring;
    let mut watchdog = watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            Some(()) = wake_rx.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while wake_rx.try_recv().is_ok() {}
                let summary = daemon.store.rescan();
                sd::status(&summary.to_string());
                objects.sync(daemon.store.list()).await;
            }
            Some(req) = req_rx.recv() => {
                daemon.handle(req);
                objects.sync(daemon.store.list()).await;
            }
            _ = hup.recv() => {
                daemon.reload();
                objects.sync(daemon.store.list()).await;
            }
            _ = refresh.tick() => objects.sync(daemon.store.list()).await,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                daemon.drain_events(guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = tick(&mut watchdog) => sd::watchdog(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    sd::stopping();
    tracing::info!("stopping: unloading every policy");
    daemon.store.clear();
    Ok(())
}

/// Half of systemd's WATCHDOG_USEC, when the service has a watchdog.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|p| p == std::process::id());
    (for_us && usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Ticks the watchdog from the main loop, so a stuck loop stops the pings.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Daemon {
    /// Re-reads every file, changed or not (SIGHUP, `systemctl reload`).
    fn reload(&mut self) -> Summary {
        sd::reloading();
        let summary = self.store.rescan_all();
        tracing::info!("reloaded: {summary}");
        sd::ready(&summary.to_string());
        summary
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::ListPolicies(reply) => {
                let _ = reply.send(Ok(self.store.list()));
            }
            Request::SetMode {
                namespace,
                name,
                mode,
                reply,
            } => {
                let _ = reply.send(self.store.set_mode(&(namespace, name), &mode));
            }
            Request::AddPolicy { yaml, mode, reply } => {
                let _ = reply.send(self.add_policy(&yaml, &mode));
            }
            Request::DeletePolicy {
                namespace,
                name,
                reply,
            } => {
                let _ = reply.send(self.delete_policy(&(namespace, name)));
            }
            Request::Reload(reply) => {
                let _ = reply.send(Ok(self.reload().to_string()));
            }
            Request::GetPolicy {
                namespace,
                name,
                reply,
            } => {
                let _ = reply.send(self.store.get(&(namespace, name)));
            }
            Request::ResetMode {
                namespace,
                name,
                reply,
            } => {
                let _ = reply.send(self.store.reset_mode(&(namespace, name)));
            }
            Request::SetEnabled {
                namespace,
                name,
                enabled,
                reply,
            } => {
                let _ = reply.send(self.store.set_enabled(&(namespace, name), enabled));
            }
            Request::Status(reply) => {
                let _ = reply.send(Ok(self.status()));
            }
        }
    }

    fn status(&self) -> DaemonStatus {
        let summary = self.store.summary();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            policy_directory: self.store.dir().display().to_string(),
            kernel_features: self
                .features
                .iter()
                .map(|(k, v)| format!("{k}={}", if *v { "yes" } else { "no" }))
                .collect(),
            enabled: count(summary.enabled),
            load_errors: count(summary.errors),
            disabled: count(summary.disabled),
        }
    }

    /// Validates, then writes the file (and sidecar) into the folder; the
    /// rescan that follows loads it like any dropped file.
    fn add_policy(&mut self, yaml: &str, mode: &str) -> Result<String, ApiError> {
        let mode = match mode {
            "" => None,
            m => Some(
                m.parse::<policy::Mode>()
                    .map_err(|_| ApiError::InvalidMode(format!("invalid mode: {m:?}")))?,
            ),
        };
        let dir = self.store.dir().to_path_buf();
        let probe = dir.join(".tetra-add.yaml");
        let tp = policy::parse_policy(&probe, yaml)
            .map_err(|e| ApiError::InvalidPolicy(e.to_string()))?;
        let key = policy::key(&tp);
        if let Some(file) = self.store.file_of(&key) {
            return Err(ApiError::AlreadyExists(format!(
                "policy {} already exists in {}",
                crate::store::describe(&key),
                file.display()
            )));
        }
        let stem = if key.0.is_empty() {
            key.1.clone()
        } else {
            format!("{}.{}", key.0, key.1)
        };
        let path = dir.join(format!("{stem}.yaml"));
        if let Some(mode) = mode {
            let sidecar = policy::Sidecar {
                mode: Some(mode),
                enabled: None,
            };
            write_atomically(
                &policy::sidecar_path(&path),
                &policy::render_sidecar(&sidecar),
            )?;
        }
        write_atomically(&path, yaml)?;
        self.store.rescan();
        Ok(path.display().to_string())
    }

    fn delete_policy(&mut self, key: &PolicyKey) -> Result<(), ApiError> {
        let file = self.store.file_of(key).ok_or_else(|| {
            ApiError::NotFound(format!("policy {} not found", crate::store::describe(key)))
        })?;
        std::fs::remove_file(&file)
            .map_err(|e| ApiError::Failed(format!("removing {}: {e}", file.display())))?;
        let _ = std::fs::remove_file(policy::sidecar_path(&file));
        self.store.rescan();
        Ok(())
    }

    fn drain_events(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            // Exec and exit records feed the process cache (not yet kept).
            let Some(events::Record::Policy(ev)) = events::decode(&item) else {
                continue;
            };
            let Some(meta) = self.store.hook_meta(ev.policy_slot, ev.hook_slot) else {
                continue;
            };
            let line = events::to_json(&ev, meta, &self.clock, &self.node_name);
            if let Err(e) = self.events.write(&line) {
                tracing::error!("writing event: {e}");
            }
        }
    }
}

/// Write to a temporary name then rename, so the watcher never sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), ApiError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| ApiError::Failed(format!("writing {}: {e}", path.display())))
}
