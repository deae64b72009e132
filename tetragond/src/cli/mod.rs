//! The `tetra` command line: Tetragon's `tetra tracingpolicy ...` commands,
//! spoken over D-Bus to tetragond instead of gRPC.
//!
//! Everything prints through the `out`/`err` writers given to [`run`], so the
//! commands can be tested without a terminal.

pub mod completions;
pub mod generate;
pub mod getevents;
pub mod table;
pub mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::BUS_NAME;
use crate::dbus::{BusChoice, DbusError, ManagerProxy};
use crate::policy::{error::in_file, PolicyKey};

/// Command line of `tetra`.
#[derive(Debug, Parser)]
#[command(
    name = "tetra",
    version,
    about = "Control tetragond, Tetragon's tracing policies as a service"
)]
pub struct Cli {
    /// Bus where tetragond is: `system`, `session`, or a D-Bus address such
    /// as `unix:path=/run/dbus/system_bus_socket`.
    #[arg(
        long,
        global = true,
        default_value = "system",
        value_name = "system|session|ADDRESS"
    )]
    pub bus: BusChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage tracing policies
    #[command(name = "tracingpolicy", visible_alias = "tp", subcommand)]
    TracingPolicy(PolicyCommand),
    /// Show the daemon's version, policy folder, policy counts, kernel
    /// features, and events exported and dropped
    Status,
    /// Stream the daemon's events as they happen
    #[command(name = "getevents")]
    GetEvents(getevents::GetEvents),
    /// Print the completion script for SHELL (for packagers: hidden)
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

/// A policy named on the command line.
#[derive(Debug, clap::Args)]
pub struct PolicyName {
    /// Namespace of a TracingPolicyNamespaced; omit for a global policy
    #[arg(long, short = 'n', default_value = "")]
    pub namespace: String,
    /// Policy name (metadata.name)
    pub name: String,
}

impl PolicyName {
    fn key(&self) -> PolicyKey {
        PolicyKey::new(self.namespace.clone(), self.name.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List tracing policies
    List {
        /// Output format
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Set the mode of a loaded policy at run time
    SetMode {
        /// Namespace of a TracingPolicyNamespaced; omit for a global policy
        #[arg(long, short = 'n', default_value = "")]
        namespace: String,
        /// Policy name (metadata.name)
        name: String,
        mode: Mode,
    },
    /// Add a policy from a YAML file to the policy folder
    Add {
        /// Mode to load it in, kept in a sidecar next to the policy
        #[arg(long, short = 'm', value_enum)]
        mode: Option<Mode>,
        /// The TracingPolicy YAML file
        file: PathBuf,
    },
    /// Delete a policy from the policy folder
    Delete {
        /// Namespace of a TracingPolicyNamespaced; omit for a global policy
        #[arg(long, short = 'n', default_value = "")]
        namespace: String,
        /// Policy name (metadata.name)
        name: String,
    },
    /// Check policy files with the daemon's own parse and compile, against
    /// the running kernel: a file that passes loads
    Validate {
        /// Compile here instead, for a kernel with these features (`all`,
        /// or a comma-separated list of what `tetra status` lists, e.g.
        /// `kprobes,bpf_trampolines`), with this machine's tracepoint formats
        #[arg(long, value_name = "all|FEATURE,...")]
        kernel: Option<String>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print a generated policy (Tetragon's generators) to stdout
    Generate {
        /// Limit each kprobe to this binary (a matchBinaries In selector)
        #[arg(long, short = 'm', global = true, value_name = "PATH")]
        match_binary: Option<String>,
        #[command(subcommand)]
        what: generate::Generate,
    },
    /// Make the daemon rescan its policy folder now
    Reload,
    /// Drop the run-time mode; the sidecar's or the policy's applies again
    ResetMode(PolicyName),
    /// Enable a policy disabled at run time
    Enable(PolicyName),
    /// Unload a policy but keep it listed as disabled (kept across restarts)
    Disable(PolicyName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tetragon's table; `text` is accepted as in Tetragon's tetra
    #[value(alias = "text")]
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Enforce,
    Monitor,
}

impl Mode {
    /// The spelling the daemon and policy files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// Why a command failed. The Display text, causes included, is what the
/// user reads after `Error: `; there are no separate sources to chain.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `bus` reads as "the system bus", "the bus at ADDRESS", ...
    #[error("cannot connect to {bus}: {reason}")]
    Connect { bus: String, reason: String },
    /// The daemon (or the bus on its behalf) refused the call.
    #[error("{0}")]
    Daemon(String),
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    #[error("cannot encode the list as JSON: {0}")]
    Json(serde_json::Error),
    /// An argument the parser let through but that means nothing.
    #[error("{0}")]
    Usage(String),
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Write(e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Json(e)
    }
}

impl From<DbusError> for CliError {
    fn from(e: DbusError) -> Self {
        CliError::Daemon(daemon_message(&e))
    }
}

impl From<zbus::Error> for CliError {
    fn from(e: zbus::Error) -> Self {
        DbusError::from(e).into()
    }
}

/// The D-Bus error's own text; when the daemon is simply not there, say so
/// in words rather than with the bus's activation jargon.
fn daemon_message(e: &DbusError) -> String {
    if let DbusError::ZBus(zbus::Error::MethodError(name, _, _)) = e {
        let name = name.as_str();
        if name == "org.freedesktop.DBus.Error.ServiceUnknown"
            || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        {
            return format!("tetragond is not running (nobody owns {BUS_NAME} on this bus)");
        }
    }
    e.message()
}

/// How a command that did not fail outright ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Problems were found and reported (e.g. invalid files): exit 1.
    Failure,
}

/// Runs one parsed command line.
pub async fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, CliError> {
    let bus = &cli.bus;
    let command = match cli.command {
        Command::TracingPolicy(command) => command,
        Command::Status => {
            status(&connect(bus).await?, out).await?;
            return Ok(Outcome::Success);
        }
        // Reads the daemon's event socket: no bus needed.
        Command::GetEvents(args) => {
            getevents::run(&args, out).await?;
            return Ok(Outcome::Success);
        }
        Command::Completions { shell } => {
            completions::write(shell, out)?;
            return Ok(Outcome::Success);
        }
    };
    match command {
        // Prints YAML: no bus needed.
        PolicyCommand::Generate { match_binary, what } => {
            out.write_all(generate::policy(what, match_binary.as_deref()).as_bytes())?;
        }
        PolicyCommand::Validate { files, kernel } => {
            let proxy;
            let compiler = match kernel {
                Some(spec) => validate::Compiler::offline(&spec).map_err(CliError::Usage)?,
                None => {
                    proxy = connect(bus).await.map_err(|e| e.to_string());
                    validate::Compiler::Daemon(proxy.as_ref().map_err(Clone::clone))
                }
            };
            return Ok(validate::validate_files(&files, &compiler, out, err).await?);
        }
        PolicyCommand::List { output } => list(&connect(bus).await?, output, out, err).await?,
        PolicyCommand::SetMode {
            namespace,
            name,
            mode,
        } => {
            connect(bus)
                .await?
                .set_mode(&namespace, &name, mode.as_str())
                .await?;
            let key = PolicyKey::new(namespace, name);
            writeln!(
                out,
                "tracing policy \"{key}\" set to mode \"{}\"",
                mode.as_str()
            )?
        }
        PolicyCommand::Add { mode, file } => {
            // Read before connecting: a typo in the path needs no daemon.
            let yaml = read_policy(&file)?;
            let mode = mode.map(Mode::as_str).unwrap_or("");
            let path = connect(bus)
                .await?
                .add_policy(&yaml, mode)
                .await
                .map_err(|e| match e {
                    // Placed in the file the caller named.
                    DbusError::InvalidPolicy(why) => CliError::Daemon(in_file(&file, &why)),
                    e => e.into(),
                })?;
            writeln!(out, "{path}")?
        }
        PolicyCommand::Delete { namespace, name } => {
            connect(bus).await?.delete_policy(&namespace, &name).await?;
            let key = PolicyKey::new(namespace, name);
            writeln!(out, "tracing policy \"{key}\" deleted")?
        }
        PolicyCommand::Reload => writeln!(out, "{}", connect(bus).await?.reload().await?)?,
        PolicyCommand::ResetMode(p) => {
            connect(bus)
                .await?
                .reset_mode(&p.namespace, &p.name)
                .await?
        }
        PolicyCommand::Enable(p) => {
            connect(bus)
                .await?
                .enable_policy(&p.namespace, &p.name)
                .await?;
            writeln!(out, "tracing policy \"{}\" enabled", p.key())?
        }
        PolicyCommand::Disable(p) => {
            connect(bus)
                .await?
                .disable_policy(&p.namespace, &p.name)
                .await?;
            writeln!(out, "tracing policy \"{}\" disabled", p.key())?
        }
    }
    Ok(Outcome::Success)
}

/// A proxy for the daemon's Manager object on `bus`.
async fn connect(bus: &BusChoice) -> Result<ManagerProxy<'static>, CliError> {
    let conn = bus.connect().await.map_err(|e| CliError::Connect {
        bus: bus_label(bus),
        reason: e.to_string(),
    })?;
    Ok(ManagerProxy::new(&conn).await?)
}

async fn list(
    proxy: &ManagerProxy<'_>,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let policies = proxy.list_policies().await?;
    match output {
        Output::Table => {
            out.write_all(table::render_table(&policies).as_bytes())?;
            for line in table::error_lines(&policies) {
                writeln!(err, "{line}")?;
            }
        }
        Output::Json => out.write_all(table::render_json(&policies)?.as_bytes())?,
    }
    Ok(())
}

async fn status(proxy: &ManagerProxy<'_>, out: &mut dyn Write) -> Result<(), CliError> {
    let policies = proxy.list_policies().await?;
    let count = |state: &str| policies.iter().filter(|p| p.state == state).count();
    writeln!(out, "version:          {}", proxy.version().await?)?;
    writeln!(out, "policy directory: {}", proxy.policy_directory().await?)?;
    let folder_error = proxy.policy_directory_error().await?;
    if !folder_error.is_empty() {
        writeln!(
            out,
            "policy folder:    {folder_error}; nothing changed, retrying"
        )?;
    }
    writeln!(
        out,
        "policies:         {} enabled, {} load_error, {} disabled",
        count("enabled"),
        count("load_error"),
        count("disabled")
    )?;
    writeln!(
        out,
        "kernel features:  {}",
        proxy.kernel_features().await?.join(" ")
    )?;
    writeln!(
        out,
        "kernel memory:    {} (programs and maps, shared by all policies)",
        table::humanize_bytes(proxy.kernel_memory().await?)
    )?;
    events_status(proxy, out).await
}

/// The exporter's counters, from the daemon's Events interface.
async fn events_status(proxy: &ManagerProxy<'_>, out: &mut dyn Write) -> Result<(), CliError> {
    let events = crate::export::dbus::EventsProxy::builder(proxy.inner().connection())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let Ok(exported) = events.exported().await else {
        writeln!(
            out,
            "events:           unknown (the daemon has no Events interface)"
        )?;
        return Ok(());
    };
    let dropped = events.dropped().await?;
    let total = |m: &std::collections::HashMap<String, u64>| m.values().sum::<u64>();
    writeln!(out, "events file:      {}", events.file().await?)?;
    let mut reasons: Vec<_> = dropped.iter().filter(|(_, n)| **n > 0).collect();
    reasons.sort();
    let detail = if reasons.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}={n}")).collect();
        format!(" ({})", list.join(", "))
    };
    writeln!(
        out,
        "events:           {} exported, {} dropped{detail}",
        total(&exported),
        total(&dropped)
    )?;
    let socket = events.socket().await?;
    if socket.is_empty() {
        writeln!(out, "live stream:      off")?;
    } else {
        writeln!(
            out,
            "live stream:      {socket}, {} clients, {} lines missed by slow clients",
            events.stream_clients().await?,
            events.stream_dropped().await?
        )?;
    }
    Ok(())
}

fn bus_label(bus: &BusChoice) -> String {
    match bus {
        BusChoice::System => "the system bus".to_owned(),
        BusChoice::Session => "the session bus".to_owned(),
        BusChoice::Address(address) => format!("the bus at {address}"),
    }
}

fn read_policy(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|reason| CliError::Read {
        path: path.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests;
