//! USDT probes (SystemTap SDT notes, `.note.stapsdt`) of an ELF file:
//! where each probe is, as the file offset a uprobe attaches at, and where
//! its arguments are, from the note's argument specs (`-4@%edi
//! 8@-16(%rbp)`: size, signedness, and an x86-64 AT&T operand).

use std::{fs, path::Path};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// One probe site (a probe may have several, one per inlined copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub provider: String,
    pub name: String,
    /// Where in the file the probe's instruction is: the uprobe offset.
    pub file_offset: u64,
    /// The file offset of its semaphore (a counter the probe's users
    /// raise so the program runs the probe's argument set-up: the uprobe's
    /// `ref_ctr_offset`, which the kernel raises); 0 for none.
    pub semaphore: u64,
    /// Its arguments in order, or why one cannot be read.
    pub args: Vec<Result<Operand, OperandError>>,
}

/// Where a probe argument is, and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operand {
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    pub signed: bool,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In a register: its byte offset in the uprobe's `struct pt_regs`
    /// (`%ah` is the byte after `%al`).
    Register { pt_regs: u16 },
    /// In memory at a register's value plus `displacement` (`-16(%rbp)`).
    Memory {
        base_pt_regs: u16,
        displacement: i32,
    },
    /// In memory at a base register's value, plus an index register's
    /// times `scale` (1, 2, 4 or 8), plus `displacement`
    /// (`-96(%rbp,%rax,8)`: an array's element).
    Indexed {
        base_pt_regs: u16,
        index_pt_regs: u16,
        scale: u8,
        displacement: i32,
    },
    /// The same value at every passage (`$5`, `$-1`, `$0x10`): the
    /// compiler knew it.
    Constant(i64),
    /// A register's value plus `displacement`, not read further: a
    /// symbol's address (`$counter`), as the probe's own address (`%rip`
    /// at the uprobe) plus the symbol's distance from it.
    Address {
        base_pt_regs: u16,
        displacement: i32,
    },
}

/// `%rip`'s byte offset in x86-64's `struct pt_regs`: a uprobe's handler
/// sees it at the probe's own address (the kernel sets it back from past
/// the breakpoint before calling it).
pub const RIP_PT_REGS: u16 = 128;

/// Finds a symbol an operand names: its distance in bytes from the probe
/// (its address minus the probe's, both as linked), or None.
pub type SymbolDistance<'a> = &'a dyn Fn(&str) -> Option<i64>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperandError {
    #[error("`{0}` is not SIZE@OPERAND")]
    Malformed(String),
    #[error("`{0}` names a symbol the file's symbol table does not define")]
    Symbol(String),
    #[error("`{0}` is addressed relative to %rip without a symbol, or farther than 2 GiB from the probe")]
    Addressing(String),
    #[error("`{0}` names no x86-64 general-purpose register")]
    Register(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Notes { path: String, source: NotesError },
    #[error("{0} is not a regular file of at most 512 MiB")]
    NotRegular(String),
}

/// Why an ELF file's SDT notes cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    #[error("not an ELF file this machine runs: {0}")]
    NotElf(String),
    #[error("malformed .note.stapsdt: {0}")]
    Malformed(&'static str),
}

/// Files larger than this are refused: each is read whole, by the
/// compile step.
pub const MAX_BINARY_BYTES: u64 = 512 << 20;

/// The file at `path`, opened for reading only when it is a regular file
/// of at most `MAX_BINARY_BYTES`: without blocking, so a FIFO someone put
/// there cannot stall the daemon.
pub fn open_binary(path: &Path) -> Result<fs::File, UsdtError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| UsdtError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.len() > MAX_BINARY_BYTES {
        return Err(UsdtError::NotRegular(path.display().to_string()));
    }
    Ok(file)
}

/// The probes of the ELF file at `path` (see `open_binary`).
pub fn probes_of(path: &Path) -> Result<Vec<Probe>, UsdtError> {
    use std::io::Read;
    let read_err = |source| UsdtError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = open_binary(path)?;
    let mut data = Vec::new();
    (&mut file)
        .take(MAX_BINARY_BYTES)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    parse(&data).map_err(|source| UsdtError::Notes {
        path: path.display().to_string(),
        source,
    })
}

/// The probes of an ELF file's bytes; none when it has no SDT notes.
pub fn parse(data: &[u8]) -> Result<Vec<Probe>, NotesError> {
    let file = object::File::parse(data).map_err(|e| NotesError::NotElf(e.to_string()))?;
    let Some(notes) = file.section_by_name(".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let notes = notes
        .data()
        .map_err(|_| NotesError::Malformed("section data out of the file"))?;
    // Prelinking moves the file after the notes were written: the notes
    // record `.stapsdt.base`'s address then, the section has it now.
    let base_now = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let mut probes = Vec::new();
    for note in Notes(notes) {
        let note = note?;
        if note.name != b"stapsdt" || note.kind != 3 {
            continue;
        }
        let desc = Desc::parse(note.desc)?;
        let moved = |address: u64| match base_now {
            Some(now) if desc.base != 0 => address.wrapping_add(now).wrapping_sub(desc.base),
            _ => address,
        };
        let pc = moved(desc.pc);
        let symbol = |name: &str| symbol_address(&file, name).map(|a| a.wrapping_sub(pc) as i64);
        let probe_offset = file_offset(&file, pc).ok_or(NotesError::Malformed(
            "a probe's address is in no loaded segment",
        ))?;
        let semaphore = match desc.semaphore {
            0 => 0,
            address => file_offset(&file, moved(address)).ok_or(NotesError::Malformed(
                "a probe's semaphore is in no loaded segment",
            ))?,
        };
        probes.push(Probe {
            provider: desc.provider,
            name: desc.name,
            file_offset: probe_offset,
            semaphore,
            args: desc
                .args
                .split_whitespace()
                .map(|arg| parse_operand(arg, &symbol))
                .collect(),
        });
    }
    Ok(probes)
}

/// The address of the symbol `name` the file defines (its symbol table,
/// else its dynamic one).
fn symbol_address(file: &object::File<'_>, name: &str) -> Option<u64> {
    file.symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.name() == Ok(name))
        .map(|s| s.address())
}

/// The file offset of address `vaddr`, by the loaded segment holding it
/// (a malformed file's segment may say anything: checked arithmetic).
fn file_offset(file: &object::File<'_>, vaddr: u64) -> Option<u64> {
    file.segments().find_map(|s| {
        let (offset, size) = s.file_range();
        let into = vaddr.checked_sub(s.address())?;
        if into < size {
            offset.checked_add(into)
        } else {
            None
        }
    })
}

struct Note<'a> {
    name: &'a [u8],
    kind: u32,
    desc: &'a [u8],
}

/// ELF notes, one after the other: name size, descriptor size, type,
/// then the name and the descriptor, each padded to 4 bytes.
struct Notes<'a>(&'a [u8]);

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, NotesError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let bytes = self.0;
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as usize)
        };
        let padded = |n: usize| n.checked_add(3).map(|n| n & !3);
        let note = (|| {
            let (name_len, desc_len, kind) = (word(0)?, word(4)?, word(8)? as u32);
            let desc_at = 12usize.checked_add(padded(name_len)?)?;
            let end = desc_at.checked_add(padded(desc_len)?)?;
            let name = bytes.get(12..12 + name_len)?;
            let note = Note {
                // The name's NUL is part of its size.
                name: name.strip_suffix(b"\0").unwrap_or(name),
                kind,
                desc: bytes.get(desc_at..desc_at + desc_len)?,
            };
            Some((note, bytes.get(end..).unwrap_or_default()))
        })();
        match note {
            Some((note, rest)) => {
                self.0 = rest;
                Some(Ok(note))
            }
            None => {
                self.0 = &[];
                Some(Err(NotesError::Malformed("a note runs past the section")))
            }
        }
    }
}

/// A stapsdt note's descriptor: three addresses, then the provider, the
/// name and the argument specs, each NUL-terminated.
struct Desc {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

impl Desc {
    fn parse(desc: &[u8]) -> Result<Self, NotesError> {
        let address = |at: usize| {
            desc.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
                .ok_or(NotesError::Malformed("a probe's descriptor is short"))
        };
        let mut texts = desc
            .get(24..)
            .unwrap_or_default()
            .split(|&b| b == 0)
            .map(|t| String::from_utf8_lossy(t).into_owned());
        let mut text = || {
            texts.next().ok_or(NotesError::Malformed(
                "a probe's descriptor lacks its names",
            ))
        };
        Ok(Desc {
            pc: address(0)?,
            base: address(8)?,
            semaphore: address(16)?,
            provider: text()?,
            name: text()?,
            args: text().unwrap_or_default(),
        })
    }
}

/// One argument spec: `[-]SIZE@OPERAND`, where the operand is `%REG`,
/// `DISP(%REG)`, `(%REG)`, `DISP(%BASE,%INDEX,SCALE)`, a number (`$5`,
/// `$-1`, `$0x10`), a symbol's address (`$counter`) or a symbol in memory
/// (`counter(%rip)`, `counter+8(%rip)`), the symbols found by `symbol`.
pub fn parse_operand(spec: &str, symbol: SymbolDistance<'_>) -> Result<Operand, OperandError> {
    let malformed = || OperandError::Malformed(spec.to_string());
    let (size, operand) = spec.split_once('@').ok_or_else(malformed)?;
    let (signed, size) = match size.strip_prefix('-') {
        Some(size) => (true, size),
        None => (false, size),
    };
    let size: u8 = size.parse().map_err(|_| malformed())?;
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(malformed());
    }
    let location = if let Some(number) = operand.strip_prefix('$') {
        match parse_number(number) {
            Some(value) => Location::Constant(value),
            None => Location::Address {
                base_pt_regs: RIP_PT_REGS,
                displacement: symbol_distance(spec, number, symbol)?,
            },
        }
    } else if let Some(register) = operand.strip_prefix('%') {
        Location::Register {
            pt_regs: register_at(register)
                .ok_or_else(|| OperandError::Register(spec.to_string()))?
                .0,
        }
    } else {
        let (displacement, rest) = operand.split_once('(').ok_or_else(malformed)?;
        let inside = rest.strip_suffix(')').ok_or_else(malformed)?;
        let mut parts = inside.split(',');
        let base = parts.next().unwrap_or_default();
        if base == "%rip" {
            if parts.next().is_some() || parse_number(displacement).is_some() {
                return Err(OperandError::Addressing(spec.to_string()));
            }
            return Ok(Operand {
                size,
                signed,
                location: Location::Memory {
                    base_pt_regs: RIP_PT_REGS,
                    displacement: symbol_distance(spec, displacement, symbol)?,
                },
            });
        }
        let displacement = match displacement {
            "" => 0,
            d => d.parse().map_err(|_| malformed())?,
        };
        // Addresses are 64 bits wide, and so are their registers.
        let address_register = |name: &str| {
            name.strip_prefix('%')
                .and_then(register_at)
                .filter(|&(_, width)| width == 8)
                .map(|(pt_regs, _)| pt_regs)
                .ok_or_else(|| OperandError::Register(spec.to_string()))
        };
        let base_pt_regs = address_register(base)?;
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Location::Memory {
                base_pt_regs,
                displacement,
            },
            (Some(index), scale, None) => Location::Indexed {
                base_pt_regs,
                index_pt_regs: address_register(index)?,
                scale: match scale.unwrap_or("1") {
                    "1" => 1,
                    "2" => 2,
                    "4" => 4,
                    "8" => 8,
                    _ => return Err(malformed()),
                },
                displacement,
            },
            _ => return Err(malformed()),
        }
    };
    Ok(Operand {
        size,
        signed,
        location,
    })
}

/// How far `reference` (`SYMBOL`, `SYMBOL+N` or `SYMBOL-N`) is from the
/// probe: within ±2 GiB, as code addresses its data.
fn symbol_distance(
    spec: &str,
    reference: &str,
    symbol: SymbolDistance<'_>,
) -> Result<i32, OperandError> {
    let (name, offset) = match reference.rfind(['+', '-']) {
        Some(at) if at > 0 => match parse_number(&reference[at..].replace('+', "")) {
            Some(offset) => (&reference[..at], offset),
            None => (reference, 0),
        },
        _ => (reference, 0),
    };
    let distance = symbol(name).ok_or_else(|| OperandError::Symbol(spec.to_string()))?;
    distance
        .checked_add(offset)
        .and_then(|d| i32::try_from(d).ok())
        .ok_or_else(|| OperandError::Addressing(spec.to_string()))
}

/// A constant operand's number as gas writes it: decimal or `0x` hex,
/// maybe negative. None for anything else (a symbol).
fn parse_number(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    // The bits the operand holds: `$0xffffffffffffffff` is -1.
    let value = magnitude as i64;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The byte offset in x86-64's `struct pt_regs` of a general-purpose
/// register by any of its names (`rax`, `eax`, `ax`, `al`, `ah`, `r8d`,
/// ...), and the name's width in bytes: the low bytes of a register are
/// at its offset (little endian).
pub fn register_at(name: &str) -> Option<(u16, u8)> {
    // Names by width (8, 4, 2, 1 bytes), and the pt_regs offset.
    const REGISTERS: [([&str; 4], u16); 16] = [
        (["r15", "r15d", "r15w", "r15b"], 0),
        (["r14", "r14d", "r14w", "r14b"], 8),
        (["r13", "r13d", "r13w", "r13b"], 16),
        (["r12", "r12d", "r12w", "r12b"], 24),
        (["rbp", "ebp", "bp", "bpl"], 32),
        (["rbx", "ebx", "bx", "bl"], 40),
        (["r11", "r11d", "r11w", "r11b"], 48),
        (["r10", "r10d", "r10w", "r10b"], 56),
        (["r9", "r9d", "r9w", "r9b"], 64),
        (["r8", "r8d", "r8w", "r8b"], 72),
        (["rax", "eax", "ax", "al"], 80),
        (["rcx", "ecx", "cx", "cl"], 88),
        (["rdx", "edx", "dx", "dl"], 96),
        (["rsi", "esi", "si", "sil"], 104),
        (["rdi", "edi", "di", "dil"], 112),
        (["rsp", "esp", "sp", "spl"], 152),
    ];
    const WIDTHS: [u8; 4] = [8, 4, 2, 1];
    // The second byte of the first four.
    if let Some(i) = ["ah", "ch", "dh", "bh"].iter().position(|&h| h == name) {
        let low = ["al", "cl", "dl", "bl"][i];
        return register_at(low).map(|(offset, _)| (offset + 1, 1));
    }
    REGISTERS.iter().find_map(|(names, offset)| {
        let i = names.iter().position(|&n| n == name)?;
        Some((*offset, WIDTHS[i]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_name_a_register_or_memory_behind_one() {
        let op = |s| parse_operand(s, &|name| (name == "counter").then_some(0x2000));
        assert_eq!(
            op("-4@%edi"),
            Ok(Operand {
                size: 4,
                signed: true,
                location: Location::Register { pt_regs: 112 }
            })
        );
        assert_eq!(
            op("1@%ah").map(|o| o.location),
            Ok(Location::Register { pt_regs: 81 })
        );
        assert_eq!(
            op("8@%r9").map(|o| o.location),
            Ok(Location::Register { pt_regs: 64 })
        );
        assert_eq!(
            op("8@-16(%rbp)"),
            Ok(Operand {
                size: 8,
                signed: false,
                location: Location::Memory {
                    base_pt_regs: 32,
                    displacement: -16
                }
            })
        );
        assert_eq!(
            op("2@(%rsp)").map(|o| o.location),
            Ok(Location::Memory {
                base_pt_regs: 152,
                displacement: 0
            })
        );
        assert_eq!(op("4@$5").map(|o| o.location), Ok(Location::Constant(5)));
        assert_eq!(op("-4@$-1").map(|o| o.location), Ok(Location::Constant(-1)));
        assert_eq!(
            op("8@$0x10").map(|o| o.location),
            Ok(Location::Constant(16))
        );
        // Symbols: as far from the probe's address as the symbol is.
        let rip = |displacement| Location::Memory {
            base_pt_regs: RIP_PT_REGS,
            displacement,
        };
        assert_eq!(op("-4@counter(%rip)").map(|o| o.location), Ok(rip(0x2000)));
        assert_eq!(op("4@counter+8(%rip)").map(|o| o.location), Ok(rip(0x2008)));
        assert_eq!(
            op("4@counter-0x10(%rip)").map(|o| o.location),
            Ok(rip(0x1ff0))
        );
        assert_eq!(
            op("8@$counter").map(|o| o.location),
            Ok(Location::Address {
                base_pt_regs: RIP_PT_REGS,
                displacement: 0x2000
            })
        );
        assert!(matches!(op("8@$other"), Err(OperandError::Symbol(_))));
        assert!(matches!(op("8@$"), Err(OperandError::Symbol(_))));
        assert!(matches!(op("8@16(%rip)"), Err(OperandError::Addressing(_))));
        assert!(matches!(
            op("8@counter(%rip,%rax,8)"),
            Err(OperandError::Addressing(_))
        ));
        let far = |name: &str| (name == "far").then_some(1i64 << 40);
        assert!(matches!(
            parse_operand("8@far(%rip)", &far),
            Err(OperandError::Addressing(_))
        ));
        assert_eq!(
            op("-1@-96(%rbp,%rax,8)").map(|o| o.location),
            Ok(Location::Indexed {
                base_pt_regs: 32,
                index_pt_regs: 80,
                scale: 8,
                displacement: -96
            })
        );
        assert_eq!(
            op("4@(%rsi,%rdi)").map(|o| o.location),
            Ok(Location::Indexed {
                base_pt_regs: 104,
                index_pt_regs: 112,
                scale: 1,
                displacement: 0
            })
        );
        assert!(matches!(
            op("4@8(%rax,%rbx,3)"),
            Err(OperandError::Malformed(_))
        ));
        assert!(matches!(
            op("4@8(%rax,%ebx,4)"),
            Err(OperandError::Register(_))
        ));
        assert!(matches!(
            op("4@8(%rax,%rbx,4,1)"),
            Err(OperandError::Malformed(_))
        ));
        assert!(matches!(op("4@%xmm0"), Err(OperandError::Register(_))));
        assert!(matches!(op("3@%eax"), Err(OperandError::Malformed(_))));
        assert!(matches!(op("%eax"), Err(OperandError::Malformed(_))));
        assert!(matches!(op("8@-4(%eax)"), Err(OperandError::Register(_))));
    }

    /// A static ELF whose one note says `tiny:probe` is at 0x401000, in
    /// the segment loaded from file offset 0x1000 (the fuzz seed, after
    /// its first byte).
    #[test]
    fn a_probe_is_found_at_its_file_offset() {
        let file = &include_bytes!("../../fuzz/corpus/usdt/elf-tiny")[1..];
        let probes = parse(file).expect("parses");
        let [probe] = probes.as_slice() else {
            panic!("one probe: {probes:?}");
        };
        assert_eq!(
            (probe.provider.as_str(), probe.name.as_str()),
            ("tiny", "probe")
        );
        assert_eq!(probe.file_offset, 0x1000);
        assert_eq!(probe.semaphore, 0);
        assert_eq!(probe.args.len(), 4);
        assert!(probe.args.iter().all(Result::is_ok));
        assert_eq!(
            probe.args[3].as_ref().map(|o| o.location),
            Ok(Location::Constant(5))
        );
        assert!(parse(b"not an ELF file").is_err());
    }

    /// A FIFO (or any non-regular file) at the path is refused at once,
    /// not read (which would wait for a writer).
    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("usdt-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid C string; mkfifo reports through its return.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(probes_of(&fifo), Err(UsdtError::NotRegular(_))));
        assert!(matches!(probes_of(&dir), Err(UsdtError::NotRegular(_))));
        assert!(matches!(
            probes_of(&dir.join("absent")),
            Err(UsdtError::Read { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn notes_are_read_one_after_the_other() {
        let mut section = Vec::new();
        let mut note = |name: &[u8], kind: u32, desc: &[u8]| {
            section.extend((name.len() as u32).to_ne_bytes());
            section.extend((desc.len() as u32).to_ne_bytes());
            section.extend(kind.to_ne_bytes());
            section.extend(name);
            section.resize(section.len().next_multiple_of(4), 0);
            section.extend(desc);
            section.resize(section.len().next_multiple_of(4), 0);
        };
        let mut desc = Vec::new();
        for address in [0x1139u64, 0x2004, 0] {
            desc.extend(address.to_ne_bytes());
        }
        desc.extend(b"prov\0probe\0-4@%edi 8@-8(%rbp)\0");
        note(b"stapsdt\0", 3, &desc);
        note(b"GNU\0", 1, b"abcd");
        let notes: Vec<Note<'_>> = Notes(&section).map(|n| n.expect("a note")).collect();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].name, b"stapsdt");
        let d = Desc::parse(notes[0].desc).expect("a descriptor");
        assert_eq!((d.pc, d.base, d.semaphore), (0x1139, 0x2004, 0));
        assert_eq!((d.provider.as_str(), d.name.as_str()), ("prov", "probe"));
        assert_eq!(d.args, "-4@%edi 8@-8(%rbp)");
        assert!(Notes(&section[..section.len() - 2]).any(|n| n.is_err()));
    }
}
