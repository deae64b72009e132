//! Kernel function addresses from /proc/kallsyms: by name, for the kprobes
//! that one program serves (`kprobe_any` finds its function by the probed
//! address), and by address, to name the frames of kernel stack traces.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

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
        for (addr, name) in text_symbols(text) {
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

/// The names of the kernel's functions, for the compile step to refuse a
/// hook on one the kernel lacks (`tetra tp validate` then says what
/// attaching would). Read once; read again on a miss only when the loaded
/// modules changed since (a module may bring the function), so a hook that
/// ignores a missing function does not cost a read of kallsyms at every
/// compile. Names only: they are listed whatever `kptr_restrict` hides.
#[derive(Debug, Default)]
pub struct FunctionNames {
    known: Mutex<Option<Known>>,
}

#[derive(Debug)]
struct Known {
    names: HashSet<String>,
    /// [`loaded_modules`] when `names` was read.
    modules: String,
}

impl FunctionNames {
    /// Whether the running kernel has a function `name`; true when
    /// /proc/kallsyms cannot be read (attaching then says).
    pub fn has(&self, name: &str) -> bool {
        let Ok(mut known) = self.known.lock() else {
            return true;
        };
        if known.as_ref().is_some_and(|k| k.names.contains(name)) {
            return true;
        }
        let modules = loaded_modules();
        if known.as_ref().is_some_and(|k| k.modules == modules) {
            return false;
        }
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            return true;
        };
        let names: HashSet<String> = functions(&text).map(|(_, n)| n.to_string()).collect();
        let found = names.contains(name);
        *known = Some(Known { names, modules });
        found
    }
}

/// The names in /proc/modules (its other columns, such as use counts,
/// change without bringing functions).
fn loaded_modules() -> String {
    let text = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The functions of kallsyms text: name, and address unless hidden (0).
fn functions(text: &str) -> impl Iterator<Item = (Option<u64>, &str)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (addr, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
        if !matches!(kind, "t" | "T") {
            return None;
        }
        let addr = u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0);
        Some((addr, name))
    })
}

/// The text (function) symbols of kallsyms text, with their addresses;
/// hidden addresses (0) left out.
fn text_symbols(text: &str) -> impl Iterator<Item = (u64, &str)> {
    functions(text).filter_map(|(addr, name)| Some((addr?, name)))
}

/// Kernel functions by address, to name the frames of a stack trace as
/// Tetragon does: the function an address is in, and the offset into it.
/// The names share one string (some 120,000 functions take about 5 MB),
/// read when the first stack trace is rendered.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    /// Sorted by address, stably: of names sharing an address, the first
    /// listed comes first.
    functions: Vec<Function>,
    names: String,
}

#[derive(Debug, Clone, Copy)]
struct Function {
    addr: u64,
    /// Its name's bytes in `names`.
    begin: u32,
    end: u32,
}

impl KernelSymbols {
    /// Reads /proc/kallsyms. None when it cannot be read or hides the
    /// addresses.
    pub fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
        let symbols = Self::parse(&text);
        (!symbols.functions.is_empty()).then_some(symbols)
    }

    /// Kallsyms text's functions (unreadable lines skipped).
    pub fn parse(text: &str) -> Self {
        let mut symbols = KernelSymbols::default();
        for (addr, name) in text_symbols(text) {
            let begin = symbols.names.len();
            symbols.names.push_str(name);
            let (Ok(begin), Ok(end)) = (u32::try_from(begin), u32::try_from(symbols.names.len()))
            else {
                break;
            };
            symbols.functions.push(Function { addr, begin, end });
        }
        symbols.functions.sort_by_key(|f| f.addr);
        symbols
    }

    /// The function `addr` is in, and `addr`'s offset into it; None before
    /// the first function.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let after = self.functions.partition_point(|f| f.addr <= addr);
        let start = self.functions.get(after.checked_sub(1)?)?.addr;
        let first = self.functions.partition_point(|f| f.addr < start);
        let f = self.functions.get(first)?;
        let name = self.names.get(f.begin as usize..f.end as usize)?;
        Some((name, addr - start))
    }
}

#[cfg(test)]
mod tests {
    use super::{Kallsyms, KernelSymbols};

    /// Aliases at one address, a name two functions share, data among
    /// functions, a module's function, and lines out of address order.
    const SAMPLE: &str = "ffffffff81000000 T _stext\n\
                          ffffffff81000000 T _text\n\
                          ffffffff81300000 t helper\n\
                          ffffffff81234560 T vfs_read\n\
                          ffffffff81250000 D some_data\n\
                          ffffffff81400000 t helper\n\
                          ffffffffc0a01000 t nft_do_chain\t[nf_tables]\n";

    #[test]
    fn text_symbols_by_name_and_shared_names_are_none() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(k.unique("vfs_read"), Some(0xffff_ffff_8123_4560));
        assert_eq!(k.unique("nft_do_chain"), Some(0xffff_ffff_c0a0_1000));
        assert_eq!(k.unique("helper"), None, "two functions share the name");
        assert_eq!(k.unique("some_data"), None, "not a function");
        assert_eq!(k.unique("missing"), None);
    }

    #[test]
    fn an_address_is_named_by_the_function_it_is_in() {
        let k = KernelSymbols::parse(SAMPLE);
        assert_eq!(k.lookup(0xffff_ffff_8123_4575), Some(("vfs_read", 0x15)));
        assert_eq!(
            k.lookup(0xffff_ffff_8125_0010),
            Some(("vfs_read", 0x1_bab0)),
            "data is not a function"
        );
        assert_eq!(
            k.lookup(0xffff_ffff_8100_0004),
            Some(("_stext", 4)),
            "the first name listed"
        );
        assert_eq!(k.lookup(0xffff_ffff_c0a0_1008), Some(("nft_do_chain", 8)));
        assert_eq!(k.lookup(0xffff_ffff_8130_0000), Some(("helper", 0)));
        assert_eq!(k.lookup(0x1000), None);
        assert!(KernelSymbols::parse("0000000000000000 T vfs_read\n")
            .functions
            .is_empty());
    }

    #[test]
    fn hidden_addresses_are_no_symbols() {
        let k = Kallsyms::parse("0000000000000000 T _stext\n0000000000000000 T vfs_read\n");
        assert_eq!(k.unique("vfs_read"), None);
        assert!(k.functions.is_empty());
    }
}
