//! The policy corpus (tests/corpus): our own TracingPolicy files, one per
//! feature or refusal. Each says on its first line what it must do:
//!
//! - `# expect: load`: validates and is enabled on this kernel;
//! - `# expect: refuse: TEXT`: refused by validate and by the daemon alike,
//!   with TEXT in the reason;
//! - `# expect: kernel`: depends on hooks this kernel may lack (LSM,
//!   kprobes): only the agreement below is checked here; the VM guests
//!   load them.
//!
//! For every file, `tetra tp validate` (the daemon's compile, run on its
//! request) and the daemon loading it from its folder agree: both accept,
//! or both refuse with the same text at the same FILE:LINE:COLUMN.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

enum Expect {
    Load,
    Refuse(String),
    Kernel,
}

struct Case {
    name: String,
    file: PathBuf,
    text: String,
    expect: Expect,
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
            Case {
                name,
                file,
                text,
                expect,
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

#[test]
fn validate_and_the_daemon_agree_on_every_corpus_file() {
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} files", cases.len());
    let mut h = Harness::new();
    h.start_daemon();
    for case in &cases {
        h.write_policy(&format!("{}.yaml", case.name), &case.text);
    }
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
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
