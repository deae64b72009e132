//! `tetragond`: enforces the TracingPolicy files of a folder.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use tetragond::{
    config::{self, ConfigFile},
    daemon::{self, DaemonConfig},
    dbus::BusChoice,
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
    /// Daemon configuration file; flags override it [default: /etc/tetragond/tetragond.toml when it exists]
    #[arg(long)]
    config: Option<PathBuf>,
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let file = config_file(&args)?;
    init_logging(file.log_level.as_deref());
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
        events_file: args
            .events_file
            .or(file.events_file)
            .unwrap_or_else(|| "/var/log/tetragond/events.log".into()),
    })
    .await
}
