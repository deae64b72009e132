//! The output of `tetra tracingpolicy list`: Tetragon's table, byte for byte
//! in layout, and a JSON form for scripts.

use serde::Serialize;

use crate::{api::PolicyInfo, policy::display_namespace};

/// The columns of Tetragon's listing, in its order.
pub const HEADER: [&str; 12] = [
    "ID",
    "NAME",
    "DOMAIN",
    "STATE",
    "FILTERID",
    "NAMESPACE",
    "SENSORS",
    "KERNELMEMORY",
    "MODE",
    "NPOST",
    "NENFORCE",
    "NMONITOR",
];

/// Spaces after the widest cell of a column, as Tetragon's tabwriter
/// (which imitates kubectl).
const PADDING: usize = 3;

/// Bytes in base 1000 with two decimals, `512 B` below 1 kB, exactly as
/// Tetragon's `HumanizeByteCount` (`4458824` -> `4.46 MB`).
pub fn humanize_bytes(bytes: u64) -> String {
    const UNIT: u64 = 1000;
    if bytes < UNIT {
        return format!("{bytes} B");
    }
    let (mut div, mut exp) = (UNIT, 0);
    let mut n = bytes / UNIT;
    while n >= UNIT {
        div *= UNIT;
        exp += 1;
        n /= UNIT;
    }
    // u64 tops out below 19 EB, so `exp` stays within the list.
    let prefix = ["k", "M", "G", "T", "P", "E"][exp];
    format!("{:.2} {prefix}B", bytes as f64 / div as f64)
}

/// The cells of one policy's row, in [`HEADER`] order.
pub fn row_cells(p: &PolicyInfo) -> Vec<String> {
    let namespace = display_namespace(&p.namespace);
    vec![
        p.id.to_string(),
        p.name.clone(),
        p.domain.clone(),
        p.state.clone(),
        p.filter_id.to_string(),
        namespace.to_owned(),
        p.sensors.join(","),
        humanize_bytes(p.kernel_memory),
        p.mode.clone(),
        p.npost.to_string(),
        p.nenforce.to_string(),
        p.nmonitor.to_string(),
    ]
}

/// The whole table, header first, each line ending in a newline.
pub fn render_table(policies: &[PolicyInfo]) -> String {
    let header = HEADER.iter().map(|h| (*h).to_owned()).collect();
    let lines: Vec<Vec<String>> = std::iter::once(header)
        .chain(policies.iter().map(row_cells))
        .collect();
    align(&lines)
}

/// Left-aligns cells in columns the way Go's tabwriter does with padding 3:
/// every column but the last is as wide as its widest cell plus the padding;
/// the last column is not padded, so lines carry no trailing spaces.
fn align(lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut text = String::new();
    for line in lines {
        let last = line.len().saturating_sub(1);
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if i < last {
                let pad = widths[i] + PADDING - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push('\n');
    }
    text
}

/// One policy in `-o json`. The keys are part of the CLI's interface, so
/// they are spelled here rather than following `PolicyInfo`'s fields (which
/// also hold the file path, not shown).
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    id: u64,
    name: &'a str,
    domain: &'a str,
    state: &'a str,
    filter_id: u64,
    namespace: &'a str,
    sensors: &'a [String],
    kernel_memory: u64,
    mode: &'a str,
    mode_source: &'a str,
    npost: u64,
    nenforce: u64,
    nmonitor: u64,
    nratelimited: u64,
    error: &'a str,
}

impl<'a> From<&'a PolicyInfo> for JsonRow<'a> {
    fn from(p: &'a PolicyInfo) -> Self {
        JsonRow {
            id: p.id,
            name: &p.name,
            domain: &p.domain,
            state: &p.state,
            filter_id: p.filter_id,
            namespace: &p.namespace,
            sensors: &p.sensors,
            kernel_memory: p.kernel_memory,
            mode: &p.mode,
            mode_source: &p.mode_source,
            npost: p.npost,
            nenforce: p.nenforce,
            nmonitor: p.nmonitor,
            nratelimited: p.nratelimited,
            error: &p.error,
        }
    }
}

/// The policies as a pretty-printed JSON array, with a final newline.
pub fn render_json(policies: &[PolicyInfo]) -> serde_json::Result<String> {
    let rows: Vec<JsonRow<'_>> = policies.iter().map(JsonRow::from).collect();
    let mut text = serde_json::to_string_pretty(&rows)?;
    text.push('\n');
    Ok(text)
}

/// One line per policy that carries an error, for stderr: the table stays
/// one line per policy and the error text, often long, goes here.
pub fn error_lines(policies: &[PolicyInfo]) -> Vec<String> {
    policies
        .iter()
        .filter(|p| !p.error.is_empty())
        .map(|p| format!("policy {}: {}: {}", p.name, p.state, p.error))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(id: u64, name: &str, memory: u64, mode: &str, npost: u64) -> PolicyInfo {
        PolicyInfo {
            id,
            name: name.to_owned(),
            namespace: String::new(),
            domain: "static".to_owned(),
            state: "enabled".to_owned(),
            filter_id: 0,
            sensors: vec![],
            kernel_memory: memory,
            mode: mode.to_owned(),
            mode_source: "policy".to_owned(),
            npost,
            nenforce: 0,
            nmonitor: 0,
            nratelimited: 0,
            error: String::new(),
            file: format!("/etc/tetragond/policies/{name}.yaml"),
        }
    }

    #[test]
    fn header_alone() {
        assert_eq!(
            render_table(&[]),
            "ID   NAME   DOMAIN   STATE   FILTERID   NAMESPACE   SENSORS   KERNELMEMORY   \
             MODE   NPOST   NENFORCE   NMONITOR\n"
        );
    }

    #[test]
    fn matches_tetragon_listing() {
        let mut a = policy(2, "trace-bash-readline", 2_400_000, "monitor_only", 5);
        a.sensors = vec!["generic_uprobe".to_owned()];
        let mut b = policy(3, "read-etc-passwd", 1_880_000, "monitor_only", 33);
        b.domain = "grpc".to_owned();
        b.sensors = vec!["generic_kprobe".to_owned()];
        let want = "\
ID   NAME                  DOMAIN   STATE     FILTERID   NAMESPACE   SENSORS          KERNELMEMORY   MODE           NPOST   NENFORCE   NMONITOR
2    trace-bash-readline   static   enabled   0          (global)    generic_uprobe   2.40 MB        monitor_only   5       0          0
3    read-etc-passwd       grpc     enabled   0          (global)    generic_kprobe   1.88 MB        monitor_only   33      0          0
";
        assert_eq!(render_table(&[a, b]), want);
    }

    #[test]
    fn long_name_widens_its_column_only() {
        let long = "a-very-long-policy-name-that-pushes-the-columns";
        let mut p = policy(7, long, 512, "enforce", 0);
        p.namespace = "prod".to_owned();
        p.sensors = vec!["generic_tracepoint".to_owned(), "generic_uprobe".to_owned()];
        let text = render_table(&[p]);
        let lines: Vec<&str> = text.lines().collect();
        // Every column starts at the same offset in the header and the row.
        let starts = |l: &str, cells: &[&str]| -> Vec<usize> {
            cells
                .iter()
                .map(|c| l.find(c).expect("cell present"))
                .collect()
        };
        assert_eq!(
            starts(
                lines[0],
                &[
                    "NAME",
                    "DOMAIN",
                    "NAMESPACE",
                    "SENSORS",
                    "KERNELMEMORY",
                    "MODE"
                ]
            ),
            starts(
                lines[1],
                &[
                    long,
                    "static",
                    "prod",
                    "generic_tracepoint,",
                    "512 B",
                    "enforce"
                ]
            )
        );
        assert_eq!(lines[1].find("static"), Some(5 + long.len() + 3));
        assert!(
            lines.iter().all(|l| !l.ends_with(' ')),
            "trailing spaces:\n{text}"
        );
    }

    #[test]
    fn humanizes_like_tetragon() {
        for (bytes, want) in [
            (0, "0 B"),
            (512, "512 B"),
            (999, "999 B"),
            (1000, "1.00 kB"),
            (1025, "1.02 kB"),
            (1026, "1.03 kB"),
            (693_100, "693.10 kB"),
            (1_880_000, "1.88 MB"),
            (2_400_000, "2.40 MB"),
            (4_458_824, "4.46 MB"),
            (987_654_321, "987.65 MB"),
            (1_010_000_000, "1.01 GB"),
            (12_970_000_000_000, "12.97 TB"),
            (u64::MAX, "18.45 EB"),
        ] {
            assert_eq!(humanize_bytes(bytes), want, "{bytes} bytes");
        }
    }

    #[test]
    fn json_keys_and_values() {
        let mut p = policy(4, "broken", 0, "unknown", 0);
        p.state = "load_error".to_owned();
        p.error = "bad.yaml:3:5: unknown field `kprobez`".to_owned();
        let text = render_json(&[p]).expect("serialize");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        let obj = value[0].as_object().expect("an array of objects");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "id",
            "name",
            "domain",
            "state",
            "filter_id",
            "namespace",
            "sensors",
            "kernel_memory",
            "mode",
            "mode_source",
            "npost",
            "nenforce",
            "nmonitor",
            "nratelimited",
            "error",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(obj["namespace"], "");
        assert_eq!(obj["kernel_memory"], 0);
        assert_eq!(obj["sensors"], serde_json::json!([]));
        assert!(
            text.find("\"id\"") < text.find("\"error\""),
            "keys keep the struct order"
        );
    }

    #[test]
    fn errors_go_to_their_own_lines() {
        let mut bad = policy(4, "broken", 0, "unknown", 0);
        bad.state = "load_error".to_owned();
        bad.error = "no such hook".to_owned();
        let good = policy(5, "fine", 0, "enforce", 0);
        assert_eq!(
            error_lines(&[bad.clone(), good]),
            ["policy broken: load_error: no such hook"]
        );
        assert!(!render_table(&[bad]).contains("no such hook"));
    }
}
