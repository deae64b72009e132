//! The daemon's main loop. One task owns the policy store and the kernel;
//! folder changes, D-Bus requests, signals and kernel events all arrive here
//! and are handled in order.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, watch},
};

use tetragond_ebpf::{record, return_half};

use crate::{
    api::{ApiError, DaemonStatus, PolicyInfo, Request},
    clock::Clock,
    compile::{HookKind, HookMeta, ReturnHalf, Tracefs},
    dbus::{self, BusChoice},
    dbus_policies::PolicyObjects,
    events::{self, calls::CallsInFlight},
    export::{
        self, dbus::EventsService, ring, AncestorEvents, DropReason, ExportConfig, ExportStats,
        Exporter, ProcessEvents, RateLimits, RotatingFile,
    },
    kernel_info::{kallsyms::KernelSymbols, probe},
    loader, metrics, notify as sd,
    outbound::Outbound,
    policy::{self, PolicyKey},
    process::{procfs::ProcInfo, user_symbols::UserSymbols, Process, ProcessCache},
    sensors::{mounts, pin::Pins, skipped::SkippedRuns, Kernel, LoadOptions},
    store::{folder, Store, Summary},
    unit_job, watcher,
};

/// Changes arriving within this window are handled by one rescan: an editor's
/// save is several inotify events.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub bus: BusChoice,
    pub export: ExportConfig,
    /// Prometheus metrics are served here when set.
    pub metrics_address: Option<SocketAddr>,
    pub namespaces: crate::namespaces::NamespaceMap,
    pub kernel_functions: crate::kernel_info::KernelFunctions,
    /// Policy and sidecar files larger than this are not read.
    pub max_policy_file_size: u64,
    /// Where DnsLookup actions send their queries.
    pub dns_lookup_server: SocketAddr,
    /// Every BPF link is pinned in a generation folder under this bpffs
    /// folder, so enforcement outlives the process; None: nothing pinned.
    pub pin_dir: Option<PathBuf>,
    /// At SIGTERM, leave the pinned generation enforcing when systemd says
    /// the unit is being restarted (else, and without this, unload all).
    pub keep_on_restart: bool,
}

struct Daemon {
    store: Store,
    features: Vec<(&'static str, bool)>,
    exporter: Exporter,
    processes: ProcessCache,
    process_events: ProcessEvents,
    /// The events that carry `ancestors`.
    ancestors: AncestorEvents,
    clock: Clock,
    node_name: String,
    /// The policy event being rendered: one buffer, reused for every event.
    line: Vec<u8>,
    /// Kernel functions by address, read at the first event with a kernel
    /// stack (None inside when /proc/kallsyms cannot be read).
    kernel_symbols: std::cell::OnceCell<Option<KernelSymbols>>,
    /// The functions of the files user stack frames were last named in.
    user_symbols: UserSymbols,
    /// Return hooks' entry events waiting for their exit half's.
    calls: CallsInFlight,
    /// GetUrl and DnsLookup requests.
    outbound: Outbound,
    /// The mappings `process_loader` events were written for.
    loads_seen: loader::Seen,
    /// Reads their files' build IDs and renders the events, off this loop.
    loader: loader::Loader,
    /// Runs of our programs the kernel skipped (reported as drops).
    skipped: SkippedRuns,
}

/// The signals the main loop answers, set up before anything is loaded: a
/// stop asked for while the programs load is acted on once ready (and
/// unloads what was pinned), not by the default action (which would leave
/// the new generation pinned).
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

pub async fn run(config: DaemonConfig) -> Result<()> {
    let signals = Signals {
        hup: signal(SignalKind::hangup())?,
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    };
    raise_fd_limit();
    mounts::ensure_mounted();
    let pins = match &config.pin_dir {
        Some(dir) => Pins::begin(dir).unwrap_or_else(|e| {
            tracing::error!(
                "cannot pin in {}: {e}; enforcement stops with this process",
                dir.display()
            );
            Pins::disabled()
        }),
        None => {
            tracing::info!("pinning off: enforcement stops with this process");
            Pins::disabled()
        }
    };
    let result = serve(config, pins.clone(), signals).await;
    if result.is_err() {
        // Never ready: this run's partial generation goes, an earlier
        // complete one (if any) keeps enforcing.
        pins.abandon();
    }
    result
}

async fn serve(config: DaemonConfig, pins: Pins, signals: Signals) -> Result<()> {
    std::fs::create_dir_all(&config.policy_dir)
        .with_context(|| format!("creating policy folder {}", config.policy_dir.display()))?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state folder {}", config.state_dir.display()))?;
    let options = LoadOptions {
        ring_bytes: config.export.ring_buffer_bytes,
        exec_credentials: config.export.process_identity.cred,
    };
    let mut kernel = Kernel::load(pins.clone(), options).context("loading the kernel programs")?;
    kernel
        .set_aggregate_window(Duration::from_millis(config.export.aggregate_window_ms))
        .context("setting the aggregation window")?;
    let mut records =
        export::ring::spawn(kernel.take_events()?).context("starting the ring buffer reader")?;
    let x = &config.export;
    let file = RotatingFile::open(&x.file, x.rotation.clone())
        .with_context(|| format!("opening events file {}", x.file.display()))?;
    let node_name = events::node_name();
    let stats = Arc::new(ExportStats::default());
    // Without the stream, events still reach the file: not a reason to stop.
    let stream = x.socket.as_ref().and_then(|path| {
        export::stream::serve(path, stats.clone(), &node_name)
            .inspect_err(|e| tracing::error!("no live event stream: {e}"))
            .ok()
    });
    let clock = Clock::now();
    let mut processes = ProcessCache::new(&node_name, clock, x.process_cache_size)
        .with_identity(x.process_identity);
    // After the kernel's exec records started flowing, so no process falls
    // between the two.
    processes.seed_from_proc();
    let mut features = probe::probe();
    features.extend(kernel.probe_programs());
    features.push(("pinned_links", pins.enabled()));
    features.push(("pinned_perf_links", pins.perf_links()));
    tracing::info!("kernel features: {}", probe::describe(&features));
    let btf = kernel.btf();
    let kernel_can_scope = features.contains(&("ancestor_cgroup_id", true));
    let caps = crate::kernel_info::HookCaps {
        kernel_functions: config.kernel_functions,
        ..probe::hook_caps(&features)
    };
    // `process_loader` events, rendered off this loop, to write.
    let (loaded_tx, mut loaded_rx) = mpsc::channel(64);
    let loader = loader::Loader::new(clock, node_name.clone(), loader::build_id_of, loaded_tx);
    let skipped = kernel.skipped_runs();
    let mut daemon = Daemon {
        features,
        store: Store::new(
            config.policy_dir.clone(),
            config.state_dir.clone(),
            kernel,
            Box::new(Tracefs {
                caps,
                btf,
                functions: Some(Default::default()),
            }),
        )
        .with_namespaces(
            config
                .namespaces
                .clone()
                .with_kernel_scoping(kernel_can_scope),
        )
        .with_trust(folder::Trust::of_this_process(config.max_policy_file_size)),
        exporter: Exporter::new(
            file,
            RateLimits::new(x.rate_limit_per_minute, x.policy_rate_limit_per_minute),
            stats.clone(),
            stream,
            &node_name,
        ),
        processes,
        process_events: x.process_events,
        ancestors: x.ancestors,
        clock,
        node_name,
        line: Vec::with_capacity(4096),
        kernel_symbols: std::cell::OnceCell::new(),
        user_symbols: UserSymbols::default(),
        calls: CallsInFlight::default(),
        outbound: Outbound::new(config.dns_lookup_server, stats.outbound.clone()),
        loads_seen: loader::Seen::default(),
        loader,
        skipped,
    };

    let (wake_tx, mut wake_rx) = mpsc::channel(1);
    let mut watch = watcher::FolderWatch::new(&config.policy_dir, wake_tx);
    let summary = daemon.store.rescan();
    tracing::info!("{summary}");
    count_reload(&stats, &summary);

    let (req_tx, mut req_rx) = mpsc::channel(16);
    let (root_tx, mut root_rx) = mpsc::channel(16);
    let service = dbus::ManagerService::new(req_tx).with_root_lane(root_tx);
    let events_service = EventsService {
        stats: stats.clone(),
        file: x.file.display().to_string(),
        socket: x
            .socket
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let bus = dbus::serve_with(&config.bus, service, events_service)
        .await
        .context("connecting to D-Bus")?;
    let (policies_tx, policies_rx) = watch::channel(daemon.store.list());
    PolicyObjects::spawn(bus.clone(), policies_rx.clone());
    if let Some(address) = config.metrics_address {
        let bound = metrics::serve(address, stats.clone(), policies_rx).await?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    // Counters change with every event: their snapshot is refreshed this often.
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    // Every policy is installed: this run's generation takes over and the
    // one an earlier run left (enforcing until now) is removed.
    pins.commit();
    sd::ready(&summary.to_string());
    tracing::info!(dir = %config.policy_dir.display(), "tetragond ready");
    daemon.store.warm_up();

    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    let mut watchdog = watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            Some(()) = wake_rx.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while wake_rx.try_recv().is_ok() {}
                let summary = daemon.store.rescan();
                count_reload(&stats, &summary);
                sd::status(&summary.to_string());
                publish(&policies_tx, daemon.store.list());
            }
            // Root's lane: never behind other callers' requests.
            Some(req) = root_rx.recv() => {
                daemon.handle(req, &stats);
                publish(&policies_tx, daemon.store.list());
            }
            Some(req) = req_rx.recv() => {
                daemon.handle(req, &stats);
                publish(&policies_tx, daemon.store.list());
            }
            _ = hup.recv() => {
                let summary = daemon.reload();
                count_reload(&stats, &summary);
                publish(&policies_tx, daemon.store.list());
            }
            _ = refresh.tick() => {
                // A folder replaced by `mv` is watched anew; one that could
                // not be read is tried again.
                if watch.refresh() || daemon.store.folder_error().is_some() {
                    let summary = daemon.store.rescan();
                    sd::status(&summary.to_string());
                }
                daemon.store.expire_forgotten();
                daemon.export_tick();
                publish(&policies_tx, daemon.store.list());
            }
            Some(batch) = records.recv() => daemon.drain_events(batch),
            Some(loaded) = loaded_rx.recv() => {
                daemon.exporter.write(loaded.kind, &loaded.line);
                daemon.exporter.flush();
            }
            _ = tick(&mut watchdog) => sd::watchdog(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    sd::stopping();
    // What was dropped since the last tick is still reported.
    daemon.export_tick();
    if config.keep_on_restart && pins.enabled() && restart_pending().await {
        // Exit without detaching: the pins keep every program attached
        // until the next start has installed its own and removes them.
        tracing::info!(
            "stopping for a restart: {} stays pinned and enforcing until the next start replaces it",
            pins.dir().unwrap_or_default().display()
        );
        return Ok(());
    }
    tracing::info!("stopping: unloading every policy");
    daemon.store.clear();
    match pins.unload() {
        Ok(n) if n > 0 => tracing::info!("removed {n} pinned generation(s)"),
        Ok(_) => {}
        Err(e) => tracing::error!("removing pinned links: {e}"),
    }
    Ok(())
}

/// Whether systemd has a restart queued for the unit this process runs in
/// (`systemctl restart`, the package's upgrade). Anything else, including
/// no answer, counts as a stop.
async fn restart_pending() -> bool {
    match unit_job::query(unit_job::Which::Pid(std::process::id())).await {
        Ok(unit) => {
            tracing::info!(
                "asked to stop; systemd has job {} queued for {}",
                unit.job.as_deref().unwrap_or("(none)"),
                unit.id
            );
            unit.restart_pending()
        }
        Err(e) => {
            tracing::info!("asked to stop; no restart job known ({e})");
            false
        }
    }
}

/// systemd starts services with a soft limit of 1024 descriptors; every
/// program, map, link and client costs one, so the soft limit is raised to
/// the hard one (524288 under systemd) before anything is opened.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `limit`.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if raised {
        tracing::info!("open files limit {}", limit.rlim_cur);
    } else {
        tracing::warn!(
            "open files limit not raised: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Hands the policy list to its readers: the D-Bus policy objects and the
/// metrics server, each on its own task. After every change, and once a
/// second for the counters.
fn publish(readers: &watch::Sender<Vec<PolicyInfo>>, list: Vec<PolicyInfo>) {
    readers.send_replace(list);
}

fn count_reload(stats: &ExportStats, summary: &Summary) {
    let counter = if summary.errors == 0 {
        &stats.reloads_ok
    } else {
        &stats.reloads_with_errors
    };
    counter.fetch_add(1, Relaxed);
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

    fn handle(&mut self, req: Request, stats: &ExportStats) {
        let reload = matches!(req, Request::Reload(_));
        self.answer(req);
        if reload {
            count_reload(stats, &self.store.summary());
        }
    }

    fn answer(&mut self, req: Request) {
        match req {
            Request::ListPolicies(reply) => {
                let _ = reply.send(Ok(self.store.list()));
            }
            Request::SetMode { key, mode, reply } => {
                let _ = reply.send(self.store.set_mode(&key, &mode));
            }
            Request::AddPolicy { yaml, mode, reply } => {
                let _ = reply.send(self.add_policy(&yaml, &mode));
            }
            Request::CheckPolicy { yaml, reply } => {
                let _ = reply.send(self.checked_policy(&yaml).map(drop));
            }
            Request::DeletePolicy { key, reply } => {
                let _ = reply.send(self.delete_policy(&key));
            }
            Request::Reload(reply) => {
                let _ = reply.send(Ok(self.reload().to_string()));
            }
            Request::GetPolicy { key, reply } => {
                let _ = reply.send(self.store.get(&key));
            }
            Request::ResetMode { key, reply } => {
                let _ = reply.send(self.store.reset_mode(&key));
            }
            Request::SetEnabled {
                key,
                enabled,
                reply,
            } => {
                let _ = reply.send(self.store.set_enabled(&key, enabled));
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
            policy_directory_error: summary.folder_error.unwrap_or_default(),
            kernel_memory: crate::sensors::memory::bpf_memlock_total(),
        }
    }

    /// Validates, then writes the file (and sidecar) into the folder; the
    /// rescan that follows loads it like any dropped file.
    /// The parse and the compile a load of `yaml` runs (CheckPolicy and
    /// AddPolicy): what passes here loads.
    fn checked_policy(&self, yaml: &str) -> Result<policy::TracingPolicy, ApiError> {
        let probe = self.store.dir().join(".tetra-add.yaml");
        // The caller has the file: errors give the line and column only.
        let invalid = |e: policy::PolicyError| ApiError::InvalidPolicy(e.without_file());
        let tp = policy::parse_policy(&probe, yaml).map_err(invalid)?;
        self.store.check(&tp, &probe, yaml).map_err(invalid)?;
        Ok(tp)
    }

    fn add_policy(&mut self, yaml: &str, mode: &str) -> Result<String, ApiError> {
        let mode = match mode {
            "" => None,
            m => Some(
                m.parse::<policy::Mode>()
                    .map_err(|_| ApiError::InvalidMode(format!("invalid mode: {m:?}")))?,
            ),
        };
        let tp = self.checked_policy(yaml)?;
        let key = PolicyKey::of(&tp);
        if let Some(file) = self.store.file_of(&key) {
            return Err(ApiError::AlreadyExists(format!(
                "policy {} already exists in {}",
                key,
                file.display()
            )));
        }
        let dir = self.store.dir().to_path_buf();
        let path = dir.join(format!("{}.yaml", key.file_stem()));
        let sidecar = policy::sidecar_path(&path);
        // Never over another file: it may hold another policy (`a/b` and
        // `a.b` share a name) or a sidecar meant for one.
        for file in [&path, &sidecar] {
            if std::fs::symlink_metadata(file).is_ok() {
                return Err(ApiError::AlreadyExists(format!(
                    "{} already exists; policy {} was not added",
                    file.display(),
                    key
                )));
            }
        }
        let write = |file: &Path, text: &str| {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            folder::create_new(&dir, &name, text)
                .map_err(|e| ApiError::Failed(format!("writing {}: {e}", file.display())))
        };
        if let Some(mode) = mode {
            let text = policy::render_sidecar(&policy::Sidecar {
                mode: Some(mode),
                enabled: None,
            });
            write(&sidecar, &text)?;
        }
        if let Err(e) = write(&path, yaml) {
            if mode.is_some() {
                let _ = std::fs::remove_file(&sidecar);
            }
            return Err(e);
        }
        self.store.rescan();
        Ok(path.display().to_string())
    }

    fn delete_policy(&mut self, key: &PolicyKey) -> Result<(), ApiError> {
        let file = self
            .store
            .file_of(key)
            .ok_or_else(|| ApiError::NotFound(format!("policy {key} not found")))?;
        std::fs::remove_file(&file)
            .map_err(|e| ApiError::Failed(format!("removing {}: {e}", file.display())))?;
        let _ = std::fs::remove_file(policy::sidecar_path(&file));
        self.store.rescan();
        Ok(())
    }

    /// Handles a batch of ring buffer records, in order: exec and exit
    /// records feed the process cache, policy events are exported with
    /// their process; then what the reader dropped is counted.
    fn drain_events(&mut self, batch: ring::Batch) {
        let ring::Batch {
            items,
            data,
            backlog,
            process_records_dropped,
        } = batch;
        for item in items {
            match item {
                ring::Item::Policy(ev, range, whole, ima_hash) => {
                    let whole = whole.and_then(|w| {
                        Some(events::WholeArg {
                            arg: w.arg,
                            bytes: data.get(w.range)?,
                        })
                    });
                    let data = data.get(range).unwrap_or_default();
                    self.export_policy_event(&ev, data, whole, ima_hash.as_deref())
                }
                ring::Item::Exec(rec, info) => self.on_exec(&rec, info),
                ring::Item::Exit(rec, status) => self.on_exit(&rec, status),
                ring::Item::Unknown => tracing::debug!("unknown ring buffer record"),
            }
        }
        for ((policy_slot, hook_slot), n) in backlog {
            let policy = self
                .store
                .hook_meta(policy_slot, hook_slot)
                .map_or("", |meta| meta.policy_name.as_str());
            self.exporter.dropped(DropReason::Backlog, policy, n);
        }
        self.exporter
            .dropped(DropReason::ProcessRingBuffer, "", process_records_dropped);
        self.exporter.flush();
    }

    /// `whole`: its `maxData` argument's buffer; `ima_hash`: the hash it
    /// asked for, as Tetragon writes it.
    fn export_policy_event(
        &mut self,
        ev: &tetragond_ebpf::Event,
        data: &[u8],
        whole: Option<events::WholeArg<'_>>,
        ima_hash: Option<&str>,
    ) {
        let meta = self.store.hook_meta(ev.policy_slot, ev.hook_slot).cloned();
        // As in Tetragon, when the event arrives: before the exporter's
        // rate limits, and for a return hook's entry half at the call.
        for action in meta.iter().flat_map(|m| m.daemon_actions_of(ev.selector)) {
            self.outbound.request(action);
        }
        match (ev.return_half, meta) {
            (return_half::ENTRY, _) => self.calls.hold(ev, data, whole.map(|w| (w.arg, w.bytes))),
            (_, None) => self.exporter.dropped(DropReason::UnknownPolicy, "", 1),
            (return_half::EXIT, Some(meta)) => self.export_call(ev, data, whole, &meta),
            (_, Some(meta)) => self.export_hook_event(ev, data, &meta, None, whole, ima_hash),
        }
    }

    /// A return hook's call: the entry half's event held for it, completed
    /// by the exit half's `ret` (of the hook `ret_meta` describes). An exit
    /// without its entry event (not posted, or posted before the daemon
    /// read events) is not written. A `maxData` buffer came with either
    /// half: the exit half's is the `returnCopy` argument's.
    fn export_call(
        &mut self,
        ret: &tetragond_ebpf::Event,
        ret_data: &[u8],
        ret_whole: Option<events::WholeArg<'_>>,
        ret_meta: &HookMeta,
    ) {
        let Some(call) = self.calls.take(ret) else {
            return;
        };
        let Some(meta) = self
            .store
            .hook_meta(call.event.policy_slot, call.event.hook_slot)
            .cloned()
        else {
            self.exporter.dropped(DropReason::UnknownPolicy, "", 1);
            return;
        };
        let copy = match meta.return_half {
            ReturnHalf::Entry { copy } => copy,
            _ => None,
        };
        let whole = match (ret_whole, copy) {
            (Some(w), Some(copy)) => Some(events::WholeArg {
                arg: copy,
                bytes: w.bytes,
            }),
            _ => call
                .whole
                .as_ref()
                .map(|(arg, bytes)| events::WholeArg { arg: *arg, bytes }),
        };
        let part = events::ReturnPart {
            event: ret,
            payload: ret_data,
            meta: ret_meta,
        };
        self.export_hook_event(&call.event, &call.payload, &meta, Some(part), whole, None);
    }

    /// The event `ev` of the hook `meta` describes (with the return half
    /// of its call, `ret`), written unless the exporter's limits hold it.
    fn export_hook_event(
        &mut self,
        ev: &tetragond_ebpf::Event,
        data: &[u8],
        meta: &HookMeta,
        ret: Option<events::ReturnPart<'_>>,
        whole: Option<events::WholeArg<'_>>,
        ima_hash: Option<&str>,
    ) {
        if meta.kind == HookKind::Loader {
            // A mapping already written for the process (this exec of it:
            // a reused pid is another) is not an event, and does not count
            // against the policy's rate.
            let process = self.processes.get(ev.tgid, ev.ktime_ns, &ev.exe, ev.uid);
            let Some(path) = events::loaded_path(ev, data)
                .filter(|p| self.loads_seen.first((process.pid, process.start_ns), p))
            else {
                return;
            };
            if !self.exporter.admit(&meta.policy_name) {
                return;
            }
            let mapping = loader::Mapping {
                process,
                path,
                policy_name: meta.policy_name.clone(),
                tid: ev.tid,
                ktime_ns: ev.ktime_ns,
            };
            if !self.loader.submit(mapping) {
                self.exporter
                    .dropped(DropReason::LoaderBacklog, &meta.policy_name, 1);
            }
            return;
        }
        if !self.exporter.admit(&meta.policy_name) {
            return;
        }
        let process = self.processes.get(ev.tgid, ev.ktime_ns, &ev.exe, ev.uid);
        let parent = self.processes.parent(&process);
        if self.process_events == ProcessEvents::Policy && self.processes.mark_exported(ev.tgid) {
            let ancestors = self.ancestors_if(self.ancestors.base, &process);
            let exec = events::exec_event(&process, parent.as_deref(), &ancestors, &self.node_name);
            self.exporter.export(&exec);
        }
        let ancestors = self.ancestors_if(self.ancestors.hook(&meta.kind), &process);
        let kernel_symbols = if ev.kernel_stack_len != 0 {
            self.kernel_symbols
                .get_or_init(|| {
                    let symbols = KernelSymbols::read();
                    if symbols.is_none() {
                        tracing::warn!(
                            "/proc/kallsyms cannot be read: kernel stack traces are left out of events"
                        );
                    }
                    symbols
                })
                .as_ref()
        } else {
            None
        };
        let stacks = events::StackFrames::of(ev, data, kernel_symbols, &mut self.user_symbols);
        self.line.clear();
        let kind = events::write_policy_event(
            &mut self.line,
            ev,
            data,
            meta,
            &process,
            parent.as_deref(),
            &ancestors,
            &self.clock,
            &self.node_name,
            &stacks,
            ret,
            whole,
            ima_hash,
        );
        self.exporter.write(kind, &self.line);
    }

    fn on_exec(&mut self, rec: &tetragond_ebpf::ExecRecord, info: Option<ProcInfo>) {
        let process = self.processes.on_exec(rec, info);
        if self.process_events == ProcessEvents::All {
            self.processes.mark_exported(rec.tgid);
            let parent = self.processes.parent(&process);
            let ancestors = self.ancestors_if(self.ancestors.base, &process);
            let exec = events::exec_event(&process, parent.as_deref(), &ancestors, &self.node_name);
            self.exporter.export(&exec);
        }
    }

    /// `process`'s ancestors when its event carries them: no cache lookup
    /// when it does not (an empty Vec does not allocate).
    fn ancestors_if(&self, wanted: bool, process: &Process) -> Vec<Arc<Process>> {
        if wanted {
            self.processes.ancestors(process)
        } else {
            Vec::new()
        }
    }

    /// `status`: the wait status, read from /proc by the reader before the
    /// parent reaped the process (best effort).
    fn on_exit(&mut self, rec: &tetragond_ebpf::ExitRecord, status: Option<i32>) {
        let Some((process, exported)) = self.processes.on_exit(rec) else {
            return;
        };
        let wanted = match self.process_events {
            ProcessEvents::All => true,
            ProcessEvents::Policy => exported,
            ProcessEvents::None => false,
        };
        if !wanted {
            return;
        }
        let parent = self.processes.parent(&process);
        let ancestors = self.ancestors_if(self.ancestors.base, &process);
        let time = self.clock.rfc3339(rec.ktime_ns);
        let exit = events::exit_event(
            &process,
            parent.as_deref(),
            &ancestors,
            status,
            &time,
            &self.node_name,
        );
        self.exporter.export(&exit);
    }

    /// Once a second: kernel losses, drop reports, cache upkeep.
    fn export_tick(&mut self) {
        let kernel = self.store.kernel();
        self.exporter.kernel_losses(export::KernelLosses {
            policy_events: kernel.losses(record::POLICY_EVENT),
            process_records: kernel.losses(record::EXEC) + kernel.losses(record::EXIT),
            data_pieces: kernel.losses(record::DATA),
            ima_hashes: kernel.losses(record::IMA_HASH),
            busy_runs: kernel.losses(record::SCRATCH_BUSY),
            skipped_runs: self.skipped.total().unwrap_or(0),
        });
        for (slot, policy, total) in self.store.rate_limited() {
            self.exporter.post_rate_limited(slot, &policy, total);
        }
        self.exporter.tick();
        self.processes.prune(Instant::now());
        self.exporter
            .stats()
            .process_cache_entries
            .store(self.processes.len() as u64, Relaxed);
    }
}
