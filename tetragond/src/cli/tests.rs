//! The CLI against a private bus and a fake daemon, and parsing.

use std::path::PathBuf;

use clap::Parser;

use super::table::render_table;
use super::*;
use crate::dbus::serve;
use crate::dbus::testbus::{fake_daemon, sample_rows, TestBus};

/// What one `tetra` run printed and returned.
struct Ran {
    result: Result<Outcome, CliError>,
    out: String,
    err: String,
}

async fn tetra(args: &[&str]) -> Ran {
    let cli = Cli::try_parse_from(std::iter::once("tetra").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("cannot parse {args:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = run(cli, &mut out, &mut err).await;
    Ran {
        result,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// A test bus with the fake daemon served on it.
async fn daemon() -> (TestBus, zbus::Connection) {
    let bus = TestBus::start();
    let server = serve(
        &bus.choice(),
        crate::dbus::ManagerService::new(fake_daemon(sample_rows())),
    )
    .await
    .expect("serve");
    (bus, server)
}

fn error_text(ran: &Ran) -> String {
    match &ran.result {
        Err(e) => e.to_string(),
        Ok(outcome) => panic!("expected an error, got {outcome:?}; out: {}", ran.out),
    }
}

/// A scratch file that is removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("tetra-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn parses_like_tetragon() {
    let cli = Cli::try_parse_from(["tetra", "tp", "list"]).expect("parse");
    assert_eq!(cli.bus, BusChoice::System);
    let Command::TracingPolicy(PolicyCommand::List { output }) = cli.command else {
        panic!("not list: {:?}", cli.command)
    };
    assert_eq!(output, Output::Table);

    let cli = Cli::try_parse_from([
        "tetra",
        "tracingpolicy",
        "list",
        "-o",
        "text",
        "--bus",
        "session",
    ])
    .expect("parse");
    assert_eq!(cli.bus, BusChoice::Session);
    assert!(matches!(
        cli.command,
        Command::TracingPolicy(PolicyCommand::List {
            output: Output::Table
        })
    ));

    let cli = Cli::try_parse_from([
        "tetra",
        "--bus",
        "unix:path=/x",
        "tp",
        "set-mode",
        "--namespace",
        "prod",
        "web",
        "monitor",
    ])
    .expect("parse");
    assert_eq!(cli.bus, BusChoice::Address("unix:path=/x".to_owned()));
    assert!(matches!(
        cli.command,
        Command::TracingPolicy(PolicyCommand::SetMode { ref namespace, ref name, mode: Mode::Monitor })
            if namespace == "prod" && name == "web"
    ));

    assert!(Cli::try_parse_from(["tetra", "tp", "set-mode", "web", "loud"]).is_err());
    assert!(
        Cli::try_parse_from(["tetra", "tp", "validate"]).is_err(),
        "validate needs a file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let ran = tetra(&["completions", shell]).await;
        assert!(matches!(ran.result, Ok(Outcome::Success)), "{shell}");
        for word in [
            "tracingpolicy",
            "status",
            "getevents",
            "list",
            "set-mode",
            "reset-mode",
            "enable",
            "disable",
            "add",
            "delete",
            "validate",
            "generate",
            "all-syscalls",
            "all-syscalls-list",
            "match-binary",
            "reload",
            "bus",
            "namespace",
            "enforce",
            "monitor",
        ] {
            // Options without their dashes: fish spells `--bus` as `-l bus`.
            assert!(ran.out.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_the_table_and_json() {
    let (bus, _server) = daemon().await;
    let ran = tetra(&["--bus", &bus.address, "tp", "list"]).await;
    assert_eq!(
        ran.result.as_ref().ok(),
        Some(&Outcome::Success),
        "{}",
        ran.err
    );
    assert_eq!(ran.out, render_table(&sample_rows()));
    assert!(ran
        .out
        .starts_with("ID   NAME    DOMAIN   STATE     FILTERID   NAMESPACE   SENSORS"));
    assert!(ran.err.is_empty());

    let ran = tetra(&["--bus", &bus.address, "tp", "list", "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("json output");
    assert_eq!(value.as_array().map(Vec::len), Some(3));
    assert_eq!(value[2]["namespace"], "prod");
    assert_eq!(value[2]["kernel_memory"], 2_400_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_errors_are_plain_messages() {
    let (bus, _server) = daemon().await;
    let ran = tetra(&["--bus", &bus.address, "tp", "set-mode", "nope", "enforce"]).await;
    assert_eq!(error_text(&ran), "policy nope not found");
    let ran = tetra(&["--bus", &bus.address, "tp", "set-mode", "calm", "monitor"]).await;
    assert_eq!(
        error_text(&ran),
        "cannot set policy mode on a policy that is monitor only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_mode_delete_reload_add() {
    let (bus, _server) = daemon().await;
    let addr = bus.address.as_str();
    // Tetragon's success messages.
    let ran = tetra(&["--bus", addr, "tp", "set-mode", "pizza", "enforce"]).await;
    assert!(ran.result.is_ok(), "{}", error_text(&ran));
    assert_eq!(
        ran.out,
        "tracing policy \"pizza\" set to mode \"enforce\"\n"
    );
    let ran = tetra(&["--bus", addr, "tp", "delete", "--namespace", "prod", "web"]).await;
    assert!(ran.result.is_ok(), "{}", error_text(&ran));
    assert_eq!(ran.out, "tracing policy \"prod/web\" deleted\n");
    let ran = tetra(&["--bus", addr, "tp", "reload"]).await;
    assert_eq!(ran.out, "2 policies loaded\n");

    let file = TempFile::new(
        "add.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\n",
    );
    let ran = tetra(&["--bus", addr, "tp", "add", "--mode", "monitor", file.path()]).await;
    assert_eq!(ran.out, "/etc/tetragond/policies/new.yaml\n");
    let missing = "/nonexistent/tetra-test.yaml";
    let ran = tetra(&["--bus", addr, "tp", "add", missing]).await;
    assert!(error_text(&ran).starts_with("cannot read /nonexistent/tetra-test.yaml: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_when_the_daemon_is_not_running() {
    let bus = TestBus::start();
    let ran = tetra(&["--bus", &bus.address, "tp", "list"]).await;
    assert_eq!(
        error_text(&ran),
        "tetragond is not running (nobody owns org.tetragond.Tetragond1 on this bus)"
    );
}

#[tokio::test]
async fn unreachable_bus_is_a_connect_error() {
    let ran = tetra(&["--bus", "unix:path=/nonexistent/bus", "tp", "list"]).await;
    assert!(
        error_text(&ran).starts_with("cannot connect to the bus at unix:path=/nonexistent/bus: "),
        "{}",
        error_text(&ran)
    );
}

const GOOD_POLICY: &str = "\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: openat-watch
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - index: 5
      type: int
";

#[tokio::test]
async fn validate_reports_each_file_with_the_daemons_compile() {
    let (bus, _server) = daemon().await;
    let good = TempFile::new("good.yaml", GOOD_POLICY);
    let bad = TempFile::new(
        "bad.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: [TracingPolicy\n",
    );
    // Parses, but the (fake) daemon's compile refuses it.
    let refused = TempFile::new(
        "refused.yaml",
        &GOOD_POLICY.replace("openat-watch", "no-such-hook"),
    );
    let missing = "/nonexistent/tetra-missing.yaml";
    let ran = tetra(&[
        "--bus",
        &bus.address,
        "tp",
        "validate",
        good.path(),
        bad.path(),
        refused.path(),
        missing,
    ])
    .await;
    assert_eq!(
        ran.result.as_ref().ok(),
        Some(&Outcome::Failure),
        "{}",
        ran.err
    );
    assert_eq!(ran.out, format!("{}: ok\n", good.path()));
    let lines: Vec<&str> = ran.err.lines().collect();
    let bad_line = lines
        .iter()
        .find(|l| l.starts_with(bad.path()))
        .expect("bad file reported");
    let located = bad_line[bad.path().len()..].split(':').collect::<Vec<_>>();
    assert!(
        located.len() >= 4
            && located[1].parse::<u32>().is_ok()
            && located[2].parse::<u32>().is_ok(),
        "not FILE:LINE:COL: message: {bad_line}"
    );
    let compile_error = format!("{}: kprobes[0] no-such-hook: ", refused.path());
    assert!(
        lines.iter().any(|l| l.starts_with(&compile_error)),
        "{}",
        ran.err
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{missing}: "))),
        "{}",
        ran.err
    );
}

/// With no daemon to compile, nothing is called ok: the file is reported
/// not compiled, with the way to compile here.
#[tokio::test]
async fn validate_without_a_daemon_says_not_compiled() {
    let good = TempFile::new("alone.yaml", GOOD_POLICY);
    let ran = tetra(&[
        "--bus",
        "unix:path=/nonexistent/bus",
        "tp",
        "validate",
        good.path(),
    ])
    .await;
    assert_eq!(ran.result.as_ref().ok(), Some(&Outcome::Failure));
    assert!(ran.out.is_empty(), "{}", ran.out);
    assert!(
        ran.err
            .starts_with(&format!("{}: not compiled: ", good.path()))
            && ran.err.contains("--kernel"),
        "{}",
        ran.err
    );
}

/// `--kernel` compiles here against the stated features: an LSM policy
/// compiles for a kernel with the BPF LSM, not for one with kprobes only.
#[tokio::test]
async fn validate_offline_compiles_for_the_stated_kernel() {
    let lsm = TempFile::new(
        "lsm.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: lsm}\nspec:\n  lsmhooks:\n  - hook: file_open\n    args: [{index: 0, type: file}]\n",
    );
    let offline = |kernel: &'static str| {
        let path = lsm.path().to_owned();
        async move { tetra(&["tp", "validate", "--kernel", kernel, &path]).await }
    };
    let all = offline("all").await;
    assert_eq!(
        all.result.as_ref().ok(),
        Some(&Outcome::Success),
        "{}",
        all.err
    );
    let kprobes = offline("kprobes").await;
    assert_eq!(kprobes.result.as_ref().ok(), Some(&Outcome::Failure));
    assert!(kprobes.err.contains("LSM"), "{}", kprobes.err);
    let bogus = offline("kprobes,warp_drive").await;
    assert!(
        error_text(&bogus).contains("unknown kernel feature \"warp_drive\""),
        "{}",
        error_text(&bogus)
    );
}

#[tokio::test]
async fn validate_uses_the_policy_parser_and_checks_the_sidecar() {
    let typo = TempFile::new(
        "typo.yaml",
        &GOOD_POLICY.replace("  tracepoints:", "  tracepointz:"),
    );
    let ran = tetra(&["tp", "validate", "--kernel", "all", typo.path()]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&Outcome::Failure));
    assert!(
        ran.err.starts_with(&format!("{}:6:3: ", typo.path())),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("tracepointz"), "{}", ran.err);

    let policy = TempFile::new("sided.yaml", GOOD_POLICY);
    let sidecar = TempFile(policy.0.with_extension("toml"));
    std::fs::write(&sidecar.0, "mode = \"loud\"\n").expect("write sidecar");
    let ran = tetra(&["tp", "validate", "--kernel", "all", policy.path()]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&Outcome::Failure));
    assert!(
        ran.err.starts_with(&format!("{}:1:", sidecar.path())),
        "{}",
        ran.err
    );
    assert!(ran.out.is_empty());
}
