//! The policy corpus (tests/corpus): our own TracingPolicy files, one per
//! feature or refusal. Each says on its first line what it must do:
//!
//! - `# expect: load`: validates and is enabled on this kernel;
//! - `# expect: refuse: TEXT`: refused by validate and by the daemon alike,
//!   with TEXT in the reason;
//! - `# expect: kernel`: depends on hooks this kernel may lack (LSM,
//!   kprobes): only the agreement below is checked here; the VM guests
//!   load them.
//! - `# expect: feature NAME`: loads where the kernel has the feature NAME
//!   (as `tetra status` lists it), and is refused where it has not.
//!
//! For every file, `tetra tp validate` (the daemon's compile, run on its
//! request) and the daemon loading it from its folder agree: both accept,
//! or both refuse with the same text at the same FILE:LINE:COLUMN.
//!
//! A file that loads also says how to make it fire and what it then
//! writes: `# trigger: COMMAND` (run by `sh -c`, with `$TB` the test
//! binary and `/tmp/corpus/tool` a copy of it) and `# event: KIND`. Every
//! enabled file is triggered and must write an event of that kind, which
//! matches the schema and Tetragon's field names and JSON types. Each
//! `# matches: REGEX` line (an extended regular expression, which
//! `grep -E` reads alike in the guests) must then match one of the
//! policy's events of that kind, as a JSON line: the values the hook read;
//! a `# never: REGEX` line must match none of them once those are in (what
//! the trigger did that the selectors must not post).

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

enum Expect {
    Load,
    Refuse(String),
    Kernel,
    /// Loads where the kernel has this feature, refused elsewhere.
    Feature(String),
}

struct Case {
    name: String,
    file: PathBuf,
    text: String,
    expect: Expect,
    /// `# trigger:` and `# event:` (files that load).
    trigger: Option<(String, String)>,
}

/// The value of the header line `# KEY: VALUE` of `text`.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("# {key}: ");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Whether a line of the events file, as written, is an event of `kind`
/// from `policy` that `pattern` matches (waiting a while for it).
fn matching_line(h: &Harness, kind: &str, policy: &str, pattern: &str) -> bool {
    let re = regex_lite::Regex::new(pattern)
        .unwrap_or_else(|e| panic!("{policy}: `# matches: {pattern}`: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = policy_lines(h, kind, policy).iter().any(|l| re.is_match(l));
        if found || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The lines of the events file that are events of `kind` from `policy`.
fn policy_lines(h: &Harness, kind: &str, policy: &str) -> Vec<String> {
    let (start, from) = (
        format!("{{\"{kind}\":"),
        format!("\"policy_name\":\"{policy}\""),
    );
    h.event_lines()
        .into_iter()
        .filter(|l| l.starts_with(&start) && l.contains(&from))
        .collect()
}

/// Every `# KEY: VALUE` header line's value.
fn headers<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("# {key}: ");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn corpus() -> Vec<Case> {
    let dir = repo_dir().join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read");
            let first = text.lines().next().unwrap_or_default();
            let what = first
                .strip_prefix("# expect: ")
                .unwrap_or_else(|| panic!("{}: no `# expect:` first line", file.display()));
            let expect = match what {
                "load" => Expect::Load,
                "kernel" => Expect::Kernel,
                other if other.starts_with("feature ") => {
                    Expect::Feature(other["feature ".len()..].to_string())
                }
                other => Expect::Refuse(
                    other
                        .strip_prefix("refuse: ")
                        .unwrap_or_else(|| panic!("{}: bad expectation {other}", file.display()))
                        .to_string(),
                ),
            };
            let name = file
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name")
                .to_string();
            let trigger = header(&text, "trigger").map(|command| {
                let kind = header(&text, "event")
                    .unwrap_or_else(|| panic!("{}: a trigger and no `# event:`", file.display()));
                (command.to_string(), kind.to_string())
            });
            assert!(
                trigger.is_some() || matches!(expect, Expect::Refuse(_)),
                "{}: a file that loads says how to trigger it (`# trigger:`)",
                file.display()
            );
            Case {
                name,
                file,
                text,
                expect,
                trigger,
            }
        })
        .collect()
}

/// The reason after the file's name (`PATH/NAME.yaml:L:C: reason` keeps
/// `L:C: reason`), so texts about two copies of one file compare.
fn after_file<'a>(text: &'a str, name: &str) -> &'a str {
    let file = format!("{name}.yaml");
    text.find(&file)
        .map_or(text, |at| &text[at + file.len()..])
        .trim_start_matches(':')
        .trim()
}

/// `None` when validate accepts, else its reason.
fn validate(h: &Harness, case: &Case) -> Option<String> {
    let path = case.file.to_string_lossy().into_owned();
    let out = h.tetra(&["tp", "validate", &path]);
    if out.status.success() {
        return None;
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    Some(after_file(&err, &case.name).to_string())
}

/// `None` when the daemon enables the policy, else its load error.
fn daemon_verdict(h: &Harness, case: &Case) -> Option<String> {
    let p: Value = h.wait_policy(&case.name, "loaded or refused", |p| {
        p["state"] == "enabled" || p["state"] == "load_error"
    });
    if p["state"] == "enabled" {
        return None;
    }
    let err = p["error"].as_str().unwrap_or_default();
    Some(after_file(err, &case.name).to_string())
}

/// Where the triggers find their copy of the test binary (a path of its
/// own, for matchBinaries and uprobes); it exists before the daemon starts.
const TOOL_DIR: &str = "/tmp/corpus";

/// Runs the trigger of `case`, then waits for its event of the stated kind;
/// returns what is wrong with that event (schema, Tetragon's shape).
fn trigger(h: &Harness, case: &Case, command: &str, kind: &str) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .env("TB", testbin())
        .output()
        .expect("sh");
    let policy = case.name.as_str();
    let ev = h.wait_event(
        &format!("{kind} of {policy} after `{command}` ({out:?})"),
        |ev| ev[kind]["policy_name"] == policy,
    );
    let mut wrong = schema().validate(&ev);
    wrong.extend(tetragon::shape_errors(&ev));
    for pattern in headers(&case.text, "matches") {
        if !matching_line(h, kind, policy, pattern) {
            wrong.push(format!(
                "{policy}: no {kind} event matching {pattern}; its events: {}",
                policy_lines(h, kind, policy).join("\n")
            ));
        }
    }
    for pattern in headers(&case.text, "never") {
        let re = regex_lite::Regex::new(pattern)
            .unwrap_or_else(|e| panic!("{policy}: `# never: {pattern}`: {e}"));
        let from = format!("\"policy_name\":\"{policy}\"");
        if let Some(line) = h
            .event_lines()
            .into_iter()
            .find(|l| l.contains(&from) && re.is_match(l))
        {
            wrong.push(format!("{policy}: an event it must not post: {line}"));
        }
    }
    wrong
        .into_iter()
        .map(|w| format!("{policy}: its event: {w}"))
        .collect()
}

fn schema() -> schema::Schema {
    schema::Schema::load(&repo_dir().join("docs/events.schema.json"))
}

#[test]
fn validate_and_the_daemon_agree_on_every_corpus_file() {
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} files", cases.len());
    let _ = std::fs::remove_dir_all(TOOL_DIR);
    std::fs::create_dir_all(TOOL_DIR).expect("mkdir /tmp/corpus");
    std::fs::copy(testbin(), format!("{TOOL_DIR}/tool")).expect("copy the test binary");
    let mut h = Harness::new();
    h.start_daemon();
    for case in &cases {
        h.write_policy(&format!("{}.yaml", case.name), &case.text);
    }
    let status = h.tetra(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    let has_feature = |name: &str| status.contains(&format!(" {name}=yes"));
    let mut wrong = Vec::new();
    for case in &cases {
        let validated = validate(&h, case);
        let loaded = daemon_verdict(&h, case);
        if validated != loaded {
            wrong.push(format!(
                "{}: validate says {validated:?}, the daemon {loaded:?}",
                case.name
            ));
            continue;
        }
        match (&case.expect, &loaded) {
            (Expect::Load, Some(why)) => wrong.push(format!("{}: refused: {why}", case.name)),
            (Expect::Refuse(text), None) => wrong.push(format!(
                "{}: loaded, expected a refusal ({text})",
                case.name
            )),
            (Expect::Refuse(text), Some(why)) if !why.contains(text.as_str()) => {
                wrong.push(format!("{}: refused for another reason: {why}", case.name))
            }
            (Expect::Feature(name), Some(why)) if has_feature(name) => {
                wrong.push(format!("{}: refused with {name}: {why}", case.name))
            }
            (Expect::Feature(name), None) if !has_feature(name) => {
                wrong.push(format!("{}: loaded without {name}", case.name))
            }
            _ => {}
        }
        if let (None, Some((command, kind))) = (&loaded, &case.trigger) {
            wrong.extend(trigger(&h, case, command, kind));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
