//! `tetragond`: enforces the TracingPolicy files of a folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use tetragond::{
    config::{self, ConfigFile},
    daemon::{self, DaemonConfig},
    dbus::BusChoice,
    export::{ExportConfig, Rotation},
    sensors::pin,
    unit_job,
};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

#[derive(Parser, Debug)]
#[command(
    name = "tetragond",
    version,
    about = "Tetragon tracing policies enforced by eBPF"
)]
struct Args {
    /// Folder of TracingPolicy YAML files (and TOML sidecars) [default: /etc/policies.d]
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// Folder for state that survives restarts [default: /var/lib/tetragond]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// `system`, `session`, or a D-Bus address such as `unix:path=/run/x` [default: system]
    #[arg(long)]
    bus: Option<String>,
    /// Where posted events are written, one JSON object per line [default: /var/log/tetragond/events.log]
    #[arg(long)]
    events_file: Option<PathBuf>,
    /// Unix socket streaming live events to `tetra getevents`; empty: none [default: /run/tetragond/events.sock]
    #[arg(long)]
    events_socket: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics, e.g. 127.0.0.1:2112 [default: off]
    #[arg(long, value_name = "ADDRESS")]
    metrics_address: Option<std::net::SocketAddr>,
    /// Daemon configuration file; flags override it [default: /etc/tetragond/tetragond.toml when it exists]
    #[arg(long)]
    config: Option<PathBuf>,
    /// bpffs folder where every BPF link is pinned, one generation folder per run, so enforcement
    /// outlives the process (kill -9, crash, restart) [default: /sys/fs/bpf/tetragond]
    #[arg(long, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// Pin nothing: enforcement stops with the process
    #[arg(long, conflicts_with_all = ["pin_dir", "keep_on_restart", "unload"])]
    no_pin: bool,
    /// At SIGTERM, leave the pinned programs enforcing when systemd has a restart job queued for
    /// the daemon's unit (`systemctl restart`, a package upgrade); otherwise SIGTERM unloads all
    #[arg(long)]
    keep_on_restart: bool,
    /// Remove every pinned generation under --pin-dir (detaching programs no daemon holds), then exit
    #[arg(long)]
    unload: bool,
    /// With --unload: do nothing while systemd says UNIT runs or is about to start (a start or
    /// restart job is queued, or it waits to be restarted after a crash)
    #[arg(long, value_name = "UNIT", requires = "unload")]
    unless_running: Option<String>,
}

const DEFAULT_CONFIG: &str = "/etc/tetragond/tetragond.toml";

fn config_file(args: &Args) -> Result<ConfigFile> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(ConfigFile::default()),
    };
    Ok(config::load(&path)?)
}

fn init_logging(level: Option<&str>) {
    let filter = EnvFilter::try_from_env("TETRAGOND_LOG")
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    // journald when we run under systemd (it sets JOURNAL_STREAM), else stderr.
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}

/// `--pin-dir` or its default; none with `--no-pin`.
fn pin_dir(args: &Args) -> Option<PathBuf> {
    if args.no_pin {
        return None;
    }
    Some(
        args.pin_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(pin::DEFAULT_ROOT)),
    )
}

/// `--unload [--unless-running UNIT]`.
async fn unload(args: &Args) -> Result<()> {
    let Some(root) = pin_dir(args) else {
        anyhow::bail!("--unload and --no-pin exclude each other");
    };
    if let Some(unit) = &args.unless_running {
        match unit_job::query(unit_job::Which::Name(unit)).await {
            Ok(state) if state.running_or_starting() => {
                println!(
                    "{unit} is {} (job {}): pinned programs left in {}",
                    state.active_state,
                    state.job.as_deref().unwrap_or("none"),
                    root.display()
                );
                return Ok(());
            }
            Ok(state) => println!(
                "{unit} is {} (job {}): unloading",
                state.active_state,
                state.job.as_deref().unwrap_or("none")
            ),
            // A stop is what is asked for: without an answer, do it.
            Err(e) => tracing::warn!("asking systemd about {unit}: {e}; unloading"),
        }
    }
    let before = pin::pinned(&root).unwrap_or_default();
    let n = pin::unload(&root).with_context(|| format!("unloading {}", root.display()))?;
    // Stdout: for scripts, and the journal under systemd.
    println!(
        "removed {n} pinned generation(s) ({} links) from {}",
        before.len(),
        root.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.unload {
        init_logging(None);
        return unload(&args).await;
    }
    let file = config_file(&args)?;
    init_logging(file.log_level.as_deref());
    let export = export_config(args.events_file.clone(), args.events_socket.clone(), &file);
    let pin_dir = pin_dir(&args);
    let bus = args.bus.or(file.bus).unwrap_or_else(|| "system".into());
    daemon::run(DaemonConfig {
        policy_dir: args
            .policy_dir
            .or(file.policy_dir)
            .unwrap_or_else(|| "/etc/policies.d".into()),
        state_dir: args
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| "/var/lib/tetragond".into()),
        bus: bus.parse::<BusChoice>()?,
        metrics_address: args.metrics_address.or(file.metrics_address),
        namespaces: tetragond::namespaces::NamespaceMap::new(file.namespaces),
        kernel_functions: file.kernel_functions.unwrap_or_default(),
        max_policy_file_size: file
            .max_policy_file_size
            .unwrap_or(tetragond::store::folder::DEFAULT_MAX_FILE_SIZE),
        dns_lookup_server: file
            .dns_lookup_server
            .unwrap_or(tetragond::outbound::DEFAULT_DNS_SERVER),
        pin_dir,
        keep_on_restart: args.keep_on_restart,
        export,
    })
    .await
}

/// Flags win over the `[export]` table, which wins over the older
/// top-level `events_file`, which wins over the defaults.
fn export_config(
    events_file: Option<PathBuf>,
    events_socket: Option<PathBuf>,
    file: &ConfigFile,
) -> ExportConfig {
    let x = &file.export;
    let d = ExportConfig::default();
    let socket = events_socket.or(x.socket.clone()).or(d.socket);
    ExportConfig {
        file: events_file
            .or(x.file.clone())
            .or(file.events_file.clone())
            .unwrap_or(d.file),
        rotation: Rotation {
            max_size_bytes: x.max_size_bytes.unwrap_or(d.rotation.max_size_bytes),
            backups: x.backups.unwrap_or(d.rotation.backups),
            compress: x.compress.unwrap_or(d.rotation.compress),
        },
        rate_limit_per_minute: x.rate_limit_per_minute.unwrap_or(0),
        policy_rate_limit_per_minute: x.policy_rate_limit_per_minute.unwrap_or(0),
        process_events: x.process_events.unwrap_or(d.process_events),
        process_cache_size: x.process_cache_size.unwrap_or(d.process_cache_size),
        process_identity: tetragond::process::Identity {
            cred: x.enable_process_cred.unwrap_or(d.process_identity.cred),
            ns: x.enable_process_ns.unwrap_or(d.process_identity.ns),
        },
        ancestors: x.enable_ancestors.unwrap_or(d.ancestors),
        socket: socket.filter(|p| !p.as_os_str().is_empty()),
        aggregate_window_ms: x.aggregate_window_ms.unwrap_or(d.aggregate_window_ms),
        ring_buffer_bytes: x.ring_buffer_size.map_or(d.ring_buffer_bytes, |s| s.0),
    }
}
