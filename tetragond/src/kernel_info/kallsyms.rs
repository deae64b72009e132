//! Kernel function addresses from /proc/kallsyms, for the kprobes that one
//! program serves (`kprobe_any` finds its function by the probed address).

use std::collections::HashMap;

/// Text symbols by name; None for a name several functions share (a
/// probe by that name would not say which).
#[derive(Debug, Default)]
pub struct Kallsyms {
    functions: HashMap<String, Option<u64>>,
}

impl Kallsyms {
    /// Reads /proc/kallsyms. None when it cannot be read or hides the
    /// addresses (`kptr_restrict`): every address is then 0.
    pub fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
        let symbols = Self::parse(&text);
        (!symbols.functions.is_empty()).then_some(symbols)
    }

    fn parse(text: &str) -> Self {
        let mut functions: HashMap<String, Option<u64>> = HashMap::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            functions
                .entry(name.to_string())
                .and_modify(|a| *a = None)
                .or_insert(Some(addr));
        }
        Kallsyms { functions }
    }

    /// The address of the one function named `name`.
    pub fn unique(&self, name: &str) -> Option<u64> {
        self.functions.get(name).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::Kallsyms;

    #[test]
    fn text_symbols_by_name_and_shared_names_are_none() {
        let text = "ffffffff81000000 T _stext\n\
                    ffffffff81234560 T vfs_read\n\
                    ffffffff81300000 t helper\n\
                    ffffffff81400000 t helper\n\
                    ffffffff81500000 D some_data\n\
                    ffffffffc0a01000 t nft_do_chain\t[nf_tables]\n";
        let k = Kallsyms::parse(text);
        assert_eq!(k.unique("vfs_read"), Some(0xffff_ffff_8123_4560));
        assert_eq!(k.unique("nft_do_chain"), Some(0xffff_ffff_c0a0_1000));
        assert_eq!(k.unique("helper"), None, "two functions share the name");
        assert_eq!(k.unique("some_data"), None, "not a function");
        assert_eq!(k.unique("missing"), None);
    }

    #[test]
    fn hidden_addresses_are_no_symbols() {
        let k = Kallsyms::parse("0000000000000000 T _stext\n0000000000000000 T vfs_read\n");
        assert_eq!(k.unique("vfs_read"), None);
        assert!(k.functions.is_empty());
    }
}
