//! `tetra getevents`: the daemon's live events, from its stream socket.
//!
//! Filtering happens here, not in the daemon, so the daemon's side stays a
//! plain copy of each line to each client.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
};

use clap::ValueEnum;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::CliError;
use crate::export::DEFAULT_SOCKET;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsOutput {
    /// The JSON lines as exported
    Json,
    /// One readable line per event
    Compact,
}

#[derive(Debug, clap::Args)]
pub struct GetEvents {
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = EventsOutput::Json)]
    pub output: EventsOutput,
    /// Only events of this policy (may be repeated)
    #[arg(long, visible_alias = "policy-names", value_name = "NAME")]
    pub policy: Vec<String>,
    /// Only events whose process binary matches this regular expression
    #[arg(long, value_name = "REGEX")]
    pub process: Option<String>,
    /// The daemon's live event socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub events_socket: PathBuf,
}

/// Which events to show.
pub struct Filter {
    policies: BTreeSet<String>,
    process: Option<regex_lite::Regex>,
}

impl Filter {
    pub fn new(policies: &[String], process: Option<&str>) -> Result<Self, CliError> {
        let process = process
            .map(regex_lite::Regex::new)
            .transpose()
            .map_err(|e| CliError::Daemon(format!("invalid --process regex: {e}")))?;
        Ok(Filter {
            policies: policies.iter().cloned().collect(),
            process,
        })
    }

    /// Reports of dropped events pass unless they name another policy:
    /// whoever watches should know what they did not see.
    pub fn matches(&self, event: &Value) -> bool {
        let Some((kind, body)) = event_body(event) else {
            return false;
        };
        let policy = body["policy_name"].as_str().unwrap_or("");
        if kind == "rate_limit_info" {
            return policy.is_empty() || self.policies.is_empty() || self.policies.contains(policy);
        }
        if !self.policies.is_empty() && !self.policies.contains(policy) {
            return false;
        }
        match &self.process {
            Some(re) => re.is_match(body["process"]["binary"].as_str().unwrap_or("")),
            None => true,
        }
    }
}

/// The event's kind (its one `process_*` or `rate_limit_info` key) and body.
pub fn event_body(event: &Value) -> Option<(&str, &Value)> {
    event
        .as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("process_") || *k == "rate_limit_info")
        .map(|(k, v)| (k.as_str(), v))
}

/// `💥 kill     /usr/bin/cat /etc/shadow  sys_openat(...)  policy=deny-shadow`
pub fn compact(event: &Value) -> Option<String> {
    let (kind, body) = event_body(event)?;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let process = &body["process"];
    let who = {
        let (bin, args) = (s(&process["binary"]), s(&process["arguments"]));
        if args.is_empty() {
            bin
        } else {
            format!("{bin} {args}")
        }
    };
    let line = match kind {
        "process_exec" => format!("🚀 exec     {who}"),
        "process_loader" => format!("📚 loader   {who}  {}", s(&body["path"])),
        "process_exit" => {
            let how = match (s(&body["signal"]), body["status"].as_u64()) {
                (sig, _) if !sig.is_empty() => format!(" {sig}"),
                (_, Some(code)) => format!(" status={code}"),
                _ => String::new(),
            };
            format!("🏁 exit     {who}{how}")
        }
        "rate_limit_info" => {
            let mut line = format!(
                "⚠️  dropped  {} events ({})",
                s(&body["number_of_dropped_process_events"]),
                s(&body["reason"])
            );
            if let Some(p) = body["policy_name"].as_str() {
                line.push_str(&format!("  policy={p}"));
            }
            line
        }
        _ => {
            let action = s(&body["action"]);
            let enforced = body["enforced"].as_bool().unwrap_or(false);
            let acting = action
                .strip_prefix("KPROBE_ACTION_")
                .unwrap_or(&action)
                .to_ascii_lowercase();
            let (emoji, word) = match (acting.as_str(), enforced) {
                ("sigkill", true) => ("💥", "kill"),
                ("signal", true) => ("🚦", "signal"),
                ("override", true) => ("🛑", "override"),
                ("post" | "", _) => ("📬", "post"),
                // An enforcement action elided by monitor mode.
                _ => ("👀", "monitor"),
            };
            let hook = match body["function_name"].as_str() {
                Some(f) => f.to_string(),
                None => match (body["subsys"].as_str(), body["event"].as_str()) {
                    (Some(sub), Some(ev)) => format!("{sub}/{ev}"),
                    _ => s(&body["symbol"]),
                },
            };
            let args: Vec<String> = body["args"]
                .as_array()
                .map(|a| a.iter().filter_map(arg_text).collect())
                .unwrap_or_default();
            let mut line = format!(
                "{emoji} {word:<8} {who}  {hook}({})  policy={}",
                args.join(", "),
                s(&body["policy_name"])
            );
            if word == "monitor" {
                line.push_str(&format!(" action={acting}"));
            }
            line
        }
    };
    Some(line)
}

/// `label=value` (or the value alone) of a typed argument.
fn arg_text(arg: &Value) -> Option<String> {
    let obj = arg.as_object()?;
    let (_, value) = obj.iter().find(|(k, _)| k.as_str() != "label")?;
    let value = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(match obj.get("label").and_then(Value::as_str) {
        Some(label) => format!("{label}={value}"),
        None => value,
    })
}

/// Streams events until the daemon closes the socket.
pub async fn run(args: &GetEvents, out: &mut dyn Write) -> Result<(), CliError> {
    let filter = Filter::new(&args.policy, args.process.as_deref())?;
    let stream = connect(&args.events_socket).await?;
    let mut lines = BufReader::new(stream).lines();
    let read_err = |e: std::io::Error| CliError::Read {
        path: args.events_socket.clone(),
        reason: e,
    };
    while let Some(line) = lines.next_line().await.map_err(read_err)? {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if !filter.matches(&event) {
            continue;
        }
        match args.output {
            EventsOutput::Json => writeln!(out, "{line}")?,
            EventsOutput::Compact => match compact(&event) {
                Some(text) => writeln!(out, "{text}")?,
                None => continue,
            },
        }
        out.flush()?;
    }
    Ok(())
}

async fn connect(path: &Path) -> Result<tokio::net::UnixStream, CliError> {
    tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| CliError::Connect {
            bus: format!("the event stream at {}", path.display()),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kill_event(enforced: bool) -> Value {
        json!({"process_kprobe": {
            "process": {"binary": "/usr/bin/cat", "arguments": "/etc/shadow", "pid": 1},
            "function_name": "sys_openat",
            "args": [{"int_arg": -100, "label": "dfd"}, {"string_arg": "/etc/shadow"}],
            "action": "KPROBE_ACTION_SIGKILL",
            "policy_name": "deny-shadow",
            "mode": if enforced { "enforce" } else { "monitor" },
            "enforced": enforced,
        }, "node_name": "n", "time": "t"})
    }

    #[test]
    fn compact_kill_monitor_post() {
        assert_eq!(
            compact(&kill_event(true)).expect("line"),
            "💥 kill     /usr/bin/cat /etc/shadow  sys_openat(dfd=-100, /etc/shadow)  policy=deny-shadow"
        );
        let monitor = compact(&kill_event(false)).expect("line");
        assert!(monitor.starts_with("👀 monitor  /usr/bin/cat"), "{monitor}");
        assert!(
            monitor.ends_with("policy=deny-shadow action=sigkill"),
            "{monitor}"
        );
        let post = json!({"process_tracepoint": {
            "process": {"binary": "/bin/x"}, "subsys": "raw_syscalls", "event": "sys_enter",
            "args": [{"uint_arg": 39, "label": "id"}],
            "action": "KPROBE_ACTION_POST", "policy_name": "p", "enforced": false}});
        assert_eq!(
            compact(&post).expect("line"),
            "📬 post     /bin/x  raw_syscalls/sys_enter(id=39)  policy=p"
        );
    }

    #[test]
    fn compact_process_and_drops() {
        let exit = json!({"process_exit": {"process": {"binary": "/bin/x"}, "signal": "SIGKILL"}});
        assert_eq!(compact(&exit).expect("line"), "🏁 exit     /bin/x SIGKILL");
        let drop = json!({"rate_limit_info": {"number_of_dropped_process_events": "7", "reason": "ring_buffer"}});
        assert_eq!(
            compact(&drop).expect("line"),
            "⚠️  dropped  7 events (ring_buffer)"
        );
        let load =
            json!({"process_loader": {"process": {"binary": "/bin/x"}, "path": "/lib/libz.so.1"}});
        assert_eq!(
            compact(&load).expect("line"),
            "📚 loader   /bin/x  /lib/libz.so.1"
        );
        assert!(compact(&json!({"other": 1})).is_none());
    }

    #[test]
    fn filters_by_policy_and_process() {
        let f = Filter::new(&["deny-shadow".into()], Some("cat$")).expect("filter");
        assert!(f.matches(&kill_event(true)));
        let f = Filter::new(&["other".into()], None).expect("filter");
        assert!(!f.matches(&kill_event(true)));
        let f = Filter::new(&[], Some("^/bin/")).expect("filter");
        assert!(!f.matches(&kill_event(true)));
        let drop = json!({"rate_limit_info": {"number_of_dropped_process_events": "7", "reason": "ring_buffer"}});
        assert!(f.matches(&drop), "unattributed drops always show");
        assert!(Filter::new(&[], Some("(")).is_err());
    }
}
