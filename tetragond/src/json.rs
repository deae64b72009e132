//! A JSON writer for the event hot path: appends to a reused byte buffer,
//! with no allocation and no intermediate `serde_json::Value` tree. It
//! writes exactly what serde_json writes (same escapes, same number
//! forms), so exported lines stay byte-identical; the caller keeps the
//! field order.

/// Appends JSON text to a buffer. Objects and arrays are written by the
/// caller with [`Json::open`], [`Json::key`], [`Json::close`]; commas are
/// tracked here.
pub struct Json<'a> {
    out: &'a mut Vec<u8>,
    /// Whether the current object or array already has a member.
    need_comma: bool,
}

impl<'a> Json<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Json {
            out,
            need_comma: false,
        }
    }

    /// `{` or `[`.
    pub fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.need_comma = false;
    }

    /// `}` or `]`: the enclosing container now has a member.
    pub fn close(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.need_comma = true;
    }

    /// A member's key (`"k":`), after a comma when needed. `key` is one of
    /// ours: plain ASCII that needs no escaping.
    pub fn key(&mut self, key: &str) {
        self.comma();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.need_comma = false;
    }

    /// An array element's separator.
    pub fn element(&mut self) {
        self.comma();
    }

    fn comma(&mut self) {
        if self.need_comma {
            self.out.push(b',');
        }
    }

    pub fn str(&mut self, s: &str) {
        escape_into(self.out, s);
        self.need_comma = true;
    }

    pub fn u64(&mut self, n: u64) {
        push_u64(self.out, n);
        self.need_comma = true;
    }

    pub fn i64(&mut self, n: i64) {
        if n < 0 {
            self.out.push(b'-');
        }
        push_u64(self.out, n.unsigned_abs());
        self.need_comma = true;
    }

    /// A 64-bit integer as protojson writes it: a string.
    pub fn u64_string(&mut self, n: u64) {
        self.out.push(b'"');
        push_u64(self.out, n);
        self.out.push(b'"');
        self.need_comma = true;
    }

    pub fn i64_string(&mut self, n: i64) {
        self.out.push(b'"');
        self.i64(n);
        self.out.push(b'"');
    }

    pub fn bool(&mut self, b: bool) {
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
        self.need_comma = true;
    }

    /// Text that is already JSON (a rendered fragment).
    pub fn raw(&mut self, json: &[u8]) {
        self.out.extend_from_slice(json);
        self.need_comma = true;
    }

    /// Direct access, for writers of their own (a timestamp).
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.need_comma = true;
        self.out
    }
}

/// A rendered fragment kept with the value it renders (a process's fields,
/// the same in each of its events): rendered at first use, then copied.
/// Not part of the value: equal whatever it holds, and the value must not
/// change once rendered (processes are shared behind an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct JsonCache(std::sync::OnceLock<Box<[u8]>>);

impl JsonCache {
    pub fn get_or_init(&self, render: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(|| render().into_boxed_slice())
    }
}

impl PartialEq for JsonCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for JsonCache {}

/// Decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `s` as a JSON string, quotes included, escaped as serde_json does:
/// `"` and `\`, the short forms `\b \t \n \f \r`, other control
/// characters as `\u00xx`; everything else (UTF-8 included) as is.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: one scan, one copy.
    if !bytes.iter().any(|&b| needs_escape(b)) {
        out.extend_from_slice(bytes);
    } else {
        escape_slow(out, bytes);
    }
    out.push(b'"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape_slow(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(
            [
                "",
                "plain",
                "é ü 漢字 🦀",
                "\"quoted\\\"",
                "\u{7f}\u{80}\u{2028}",
            ]
            .map(String::from),
        );
        for s in samples {
            let mut out = vec![];
            escape_into(&mut out, &s);
            let expected = serde_json::to_string(&s).expect("JSON");
            assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
        }
    }

    #[test]
    fn numbers_as_serde_json_writes_them() {
        for n in [0u64, 1, 9, 10, 99, 12345, u64::from(u32::MAX), u64::MAX] {
            let mut out = vec![];
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for n in [0i64, -1, 42, i64::MIN, i64::MAX] {
            let mut out = vec![];
            Json::new(&mut out).i64(n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn commas_between_members() {
        let mut out = vec![];
        let mut j = Json::new(&mut out);
        j.open(b'{');
        j.key("a");
        j.open(b'[');
        j.element();
        j.u64(1);
        j.element();
        j.bool(false);
        j.close(b']');
        j.key("b");
        j.i64_string(-3);
        j.close(b'}');
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            r#"{"a":[1,false],"b":"-3"}"#
        );
    }
}
