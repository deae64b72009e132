//! Tetragon's process identity: `exec_id` is the base64 of
//! `NODE:START_NS:PID`, unique per execution and the same in every event
//! about it (and the `parent_exec_id` of its children).

pub fn exec_id(node_name: &str, start_ns: u64, pid: u32) -> String {
    base64(format!("{node_name}:{start_ns}:{pid}").as_bytes())
}

/// Standard base64 with padding (RFC 4648 §4), as Go's StdEncoding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn exec_id_is_tetragons_shape() {
        // base64("node:123:42")
        assert_eq!(exec_id("node", 123, 42), "bm9kZToxMjM6NDI=");
    }
}
