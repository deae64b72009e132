//! Tracepoint formats from tracefs: event ids and field offsets, read from
//! the running kernel so nothing depends on one kernel's layout.

use std::{fs, path::PathBuf};

use crate::error::SensorError;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C declaration before the name, e.g. `unsigned long` or `__data_loc char[]`.
    pub c_type: String,
    pub offset: u16,
    pub size: u16,
    pub signed: bool,
    /// Declared as an array (`args[6]`, `comm[TASK_COMM_LEN]`).
    pub array: bool,
}

/// A tracepoint's id and fields, in format order (common fields first, so
/// a Tetragon arg `index` is a position in `fields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub id: u32,
    pub fields: Vec<Field>,
}

impl Format {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn event_dir(subsystem: &str, event: &str) -> PathBuf {
    PathBuf::from(TRACEFS)
        .join("events")
        .join(subsystem)
        .join(event)
}

/// The tracepoint's id (`events/<subsystem>/<event>/id`), what a perf
/// event names it by.
pub fn event_id(subsystem: &str, event: &str) -> Result<u64, SensorError> {
    let path = event_dir(subsystem, event).join("id");
    let text =
        fs::read_to_string(&path).map_err(|e| SensorError::Io(path.display().to_string(), e))?;
    text.trim()
        .parse()
        .map_err(|_| SensorError::BadFormat(path.display().to_string()))
}

/// Reads `events/<subsystem>/<event>/format`.
pub fn read_format(subsystem: &str, event: &str) -> Result<Format, SensorError> {
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid(subsystem) || !valid(event) {
        return Err(SensorError::NoTracepoint(format!("{subsystem}/{event}")));
    }
    let path = event_dir(subsystem, event).join("format");
    let text = fs::read_to_string(&path).map_err(|e| {
        if e.kind() != std::io::ErrorKind::NotFound {
            SensorError::Io(path.display().to_string(), e)
        } else if !PathBuf::from(TRACEFS).join("events").is_dir() {
            SensorError::NoTracefs(TRACEFS)
        } else {
            SensorError::NoTracepoint(format!("{subsystem}/{event}"))
        }
    })?;
    parse_format(&text).ok_or_else(|| SensorError::BadFormat(path.display().to_string()))
}

pub fn parse_format(text: &str) -> Option<Format> {
    let mut id = None;
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("ID:") {
            id = v.trim().parse().ok();
        } else if line.starts_with("field:") {
            fields.push(parse_field(line)?);
        }
    }
    Some(Format { id: id?, fields })
}

/// `field:unsigned long args[6]; offset:16; size:48; signed:0;`
fn parse_field(line: &str) -> Option<Field> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(':')?;
        match key {
            "field" => decl = Some(value.trim()),
            "offset" => offset = value.parse().ok(),
            "size" => size = value.parse().ok(),
            "signed" => signed = value.parse::<u8>().ok(),
            _ => {}
        }
    }
    let decl = decl?;
    let (c_type, declared) = decl.rsplit_once(' ')?;
    let name = declared.split('[').next()?.to_string();
    Some(Field {
        name,
        c_type: c_type.to_string(),
        offset: offset?,
        size: size?,
        signed: signed? != 0,
        array: declared.contains('['),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_ENTER: &str = "name: sys_enter
ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;

print fmt: \"NR %ld\"
";

    #[test]
    fn parses_raw_sys_enter() {
        let f = parse_format(SYS_ENTER).expect("parses");
        assert_eq!(f.id, 443);
        assert_eq!(f.fields.len(), 6);
        assert_eq!(
            f.fields[4],
            Field {
                name: "id".into(),
                c_type: "long".into(),
                offset: 8,
                size: 8,
                signed: true,
                array: false,
            }
        );
        assert_eq!(f.fields[5].name, "args");
        assert!(f.fields[5].array);
        assert_eq!(f.fields[5].size, 48);
        assert_eq!(f.field("common_pid").map(|f| f.offset), Some(4));
    }

    #[test]
    fn rejects_format_without_id() {
        assert!(parse_format("format:\n\tfield:int x;\toffset:0;\tsize:4;\tsigned:1;\n").is_none());
    }

    #[test]
    fn refuses_path_tricks() {
        assert!(matches!(
            read_format("..", "x"),
            Err(SensorError::NoTracepoint(_))
        ));
    }
}
