//! User stack frames named as Tetragon names them: the file mapped at the
//! address in the process (`module`), the offset into that file, and the
//! ELF function symbol whose bytes hold it (`symbol`, when there is one).
//!
//! Read when the event is rendered, from /proc/PID/maps and the mapped
//! file itself (/proc/PID/map_files): a process gone by then (killed by
//! the policy, say) has its frames left out, as in Tetragon.

use std::{
    collections::{HashMap, VecDeque},
    fs,
    sync::Arc,
};

use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, SymbolKind};

/// Files whose functions are kept, the least recently read going first.
const MODULES_KEPT: usize = 32;
/// Larger files are named without their symbols: each is read whole, on
/// the daemon's main loop.
const MAX_MODULE_BYTES: u64 = 64 << 20;

/// One frame of a user stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFrame {
    /// The mapped file's path as the process sees it; empty for anonymous
    /// memory.
    pub module: String,
    /// The address's offset into that file.
    pub offset: u64,
    /// The function whose bytes hold that offset; empty when none does.
    pub symbol: String,
}

/// A mapping of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    /// The file's device and inode: with the path, which file it is.
    dev: String,
    inode: u64,
    path: String,
}

/// An ELF file's functions (symtab and dynsym), by the file offsets of
/// their bytes. The file is the user's: anything that does not parse has
/// no functions.
#[derive(Debug, Default)]
pub struct ElfFunctions {
    /// (start, end, name), sorted by start.
    ranges: Vec<(u64, u64, String)>,
}

impl ElfFunctions {
    pub fn parse(data: &[u8]) -> Self {
        let Ok(file) = object::File::parse(data) else {
            return Self::default();
        };
        let file_offset = |section: SectionIndex, address: u64| {
            let section = file.section_by_index(section).ok()?;
            let (start, _) = section.file_range()?;
            address.checked_sub(section.address())?.checked_add(start)
        };
        let mut ranges: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter_map(|s| {
                let start = file_offset(s.section_index()?, s.address())?;
                let name = s.name().ok()?.to_string();
                Some((start, start.saturating_add(s.size()), name))
            })
            .collect();
        ranges.sort();
        ranges.dedup_by_key(|(start, _, _)| *start);
        ElfFunctions { ranges }
    }

    /// The function whose bytes hold file offset `offset`.
    pub fn name_at(&self, offset: u64) -> Option<&str> {
        let after = self
            .ranges
            .partition_point(|(start, _, _)| *start <= offset);
        let (_, end, name) = self.ranges.get(after.checked_sub(1)?)?;
        (offset < *end).then_some(name.as_str())
    }
}

/// The functions of recently named files.
#[derive(Debug, Default)]
pub struct UserSymbols {
    modules: HashMap<(String, String, u64), Arc<ElfFunctions>>,
    order: VecDeque<(String, String, u64)>,
}

impl UserSymbols {
    /// The frames of `pid`'s stack `addresses` (innermost first); empty
    /// when the process's maps cannot be read.
    pub fn frames(&mut self, pid: u32, addresses: &[u64]) -> Vec<UserFrame> {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return vec![];
        };
        let maps = parse_maps(&maps);
        addresses
            .iter()
            .filter(|addr| **addr != 0)
            .filter_map(|addr| {
                let m = maps.iter().find(|m| m.start <= *addr && *addr < m.end)?;
                let offset = addr - m.start + m.offset;
                let symbol = self
                    .functions(pid, m)
                    .and_then(|f| f.name_at(offset).map(str::to_string))
                    .unwrap_or_default();
                Some(UserFrame {
                    module: m.path.clone(),
                    offset,
                    symbol,
                })
            })
            .collect()
    }

    fn functions(&mut self, pid: u32, m: &Mapping) -> Option<Arc<ElfFunctions>> {
        if !m.path.starts_with('/') {
            return None;
        }
        let key = (m.path.clone(), m.dev.clone(), m.inode);
        if let Some(f) = self.modules.get(&key) {
            return Some(f.clone());
        }
        let functions =
            read_mapped(pid, m).map_or_else(ElfFunctions::default, |d| ElfFunctions::parse(&d));
        let functions = Arc::new(functions);
        if self.order.len() >= MODULES_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.modules.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.modules.insert(key, functions.clone());
        Some(functions)
    }
}

/// The bytes of the file `m` maps in `pid`, through /proc/PID/map_files:
/// the very file mapped, not whatever its path names now. None when it is
/// not a regular file (a FIFO swapped in cannot block the daemon: it is
/// opened non-blocking and refused), not that inode, or too large.
fn read_mapped(pid: u32, m: &Mapping) -> Option<Vec<u8>> {
    use std::{
        io::Read,
        os::unix::fs::{MetadataExt, OpenOptionsExt},
    };
    let link = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(link)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.ino() != m.inode || meta.len() > MAX_MODULE_BYTES {
        return None;
    }
    let mut data = Vec::new();
    file.take(MAX_MODULE_BYTES).read_to_end(&mut data).ok()?;
    Some(data)
}

/// /proc/PID/maps: `start-end perms offset dev inode path`.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, _perms, offset, dev, inode) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                dev: dev.to_string(),
                inode: inode.parse().ok()?,
                // Paths may hold spaces: the rest of the line.
                path: fields.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_maps, read_mapped, ElfFunctions, Mapping, UserSymbols};

    #[test]
    fn maps_lines_give_ranges_offsets_and_paths() {
        let maps = parse_maps(
            "55d0c0a00000-55d0c0a28000 r--p 00000000 fe:01 1311 /usr/bin/my tool\n\
             7ffd1e0e0000-7ffd1e101000 rw-p 00000000 00:00 0                          [stack]\n\
             7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n",
        );
        assert_eq!(maps.len(), 3);
        assert_eq!(
            (maps[0].start, maps[0].end, maps[0].inode),
            (0x55d0_c0a0_0000, 0x55d0_c0a2_8000, 1311)
        );
        assert_eq!(maps[0].path, "/usr/bin/my tool");
        assert_eq!(maps[1].path, "[stack]");
        assert_eq!(maps[2].path, "");
    }

    /// This test's own binary: the frame of a function of it is named by
    /// its symbol, with the module and the offset into the file.
    #[test]
    fn a_frame_in_this_binary_is_named_by_its_function() {
        let addr = a_frame_in_this_binary_is_named_by_its_function as *const () as usize as u64;
        let mut symbols = UserSymbols::default();
        let frames = symbols.frames(std::process::id(), &[addr, 0]);
        assert_eq!(frames.len(), 1, "{frames:?}");
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        assert_eq!(frames[0].module, exe.to_string_lossy());
        assert!(
            frames[0]
                .symbol
                .contains("a_frame_in_this_binary_is_named_by_its_function"),
            "{frames:?}"
        );
        assert!(frames[0].offset > 0);
        // A process that is gone: no frames.
        assert!(symbols.frames(u32::MAX, &[addr]).is_empty());
    }

    /// Only the very file mapped is read: a mapping whose inode differs
    /// (the path now names another file) is not, nor is anonymous memory.
    #[test]
    fn only_the_mapped_file_itself_is_read() {
        let pid = std::process::id();
        let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").expect("maps"));
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        let mapped = maps
            .iter()
            .find(|m| m.path == exe.to_string_lossy())
            .expect("the test binary is mapped");
        assert!(read_mapped(pid, mapped).is_some_and(|d| d.starts_with(b"\x7fELF")));
        let other = Mapping {
            inode: mapped.inode + 1,
            ..mapped.clone()
        };
        assert!(read_mapped(pid, &other).is_none());
        let anonymous = maps
            .iter()
            .find(|m| m.path.is_empty() || m.path == "[stack]");
        assert!(anonymous.is_none_or(|m| read_mapped(pid, m).is_none()));
    }

    #[test]
    fn bytes_that_are_not_elf_have_no_functions() {
        assert!(ElfFunctions::parse(b"not an elf").ranges.is_empty());
        assert_eq!(ElfFunctions::default().name_at(4), None);
    }
}
