//! `tetragond`: enforces the TracingPolicy files of a folder.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use tetragond::{
    daemon::{self, DaemonConfig},
    dbus::BusChoice,
};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

#[derive(Parser, Debug)]
#[command(name = "tetragond", version, about = "Tetragon tracing policies enforced by eBPF")]
struct Args {
    /// Folder of TracingPolicy YAML files (and TOML sidecars).
    #[arg(long, default_value = "/etc/policies.d")]
    policy_dir: PathBuf,
    /// Folder for state that survives restarts.
    #[arg(long, default_value = "/var/lib/tetragond")]
    state_dir: PathBuf,
    /// `system`, `session`, or a D-Bus address such as `unix:path=/run/x`.
    #[arg(long, default_value = "system")]
    bus: BusChoice,
    /// Where posted events are written, one JSON object per line.
    #[arg(long, default_value = "/var/log/tetragond/events.log")]
    events_file: PathBuf,
    /// Daemon configuration file (reserved; read when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("TETRAGOND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // journald when we run under systemd (it sets JOURNAL_STREAM), else stderr.
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).init(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging();
    if let Some(config) = &args.config {
        tracing::warn!("--config {}: the daemon configuration file is not read yet", config.display());
    }
    daemon::run(DaemonConfig {
        policy_dir: args.policy_dir,
        state_dir: args.state_dir,
        bus: args.bus,
        events_file: args.events_file,
    })
    .await
}
