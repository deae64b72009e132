//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`), enough to
//! find the offsets of struct members the BPF programs read (`task_struct.mm`,
//! `file.f_path.dentry`, `qstr.len`, ...) on the running kernel at load time.
//!
//! aya's BTF types keep struct members private, hence this parser. It keeps
//! only what offset lookups need: composite types (struct/union) with their
//! members, the references that typedefs, modifiers, pointers and arrays make,
//! and the sizes of ints, enums and floats. Names stay offsets into the string
//! table and are compared lazily, so parsing vmlinux allocates a handful of
//! vectors, not a string per member.
//!
//! The format is described in the kernel's `Documentation/bpf/btf.rst`. Every
//! read is bounds-checked: the input is a file and may be anything.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

mod fields;
pub use fields::{ArgOrigin, FieldKind, FieldWalk, Pointee};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// Size of `struct btf_header` in version 1.
const BTF_HEADER_MIN_LEN: usize = 24;
/// Size of `struct btf_type`.
const BTF_TYPE_LEN: usize = 12;

const BTF_KIND_INT: u32 = 1;
const BTF_KIND_PTR: u32 = 2;
const BTF_KIND_ARRAY: u32 = 3;
const BTF_KIND_STRUCT: u32 = 4;
const BTF_KIND_UNION: u32 = 5;
const BTF_KIND_ENUM: u32 = 6;
const BTF_KIND_FWD: u32 = 7;
const BTF_KIND_TYPEDEF: u32 = 8;
const BTF_KIND_VOLATILE: u32 = 9;
const BTF_KIND_CONST: u32 = 10;
const BTF_KIND_RESTRICT: u32 = 11;
const BTF_KIND_FUNC: u32 = 12;
const BTF_KIND_FUNC_PROTO: u32 = 13;
const BTF_KIND_VAR: u32 = 14;
const BTF_KIND_DATASEC: u32 = 15;
const BTF_KIND_FLOAT: u32 = 16;
const BTF_KIND_DECL_TAG: u32 = 17;
const BTF_KIND_TYPE_TAG: u32 = 18;
const BTF_KIND_ENUM64: u32 = 19;

/// Size of a pointer on the 64-bit kernels we support.
const POINTER_SIZE: u32 = 8;
/// Bound on typedef/modifier chains and array nesting: real chains are a few
/// links long; a longer one is a cycle in a malformed file.
const MAX_RESOLVE_DEPTH: usize = 64;
/// Bound on nested anonymous structs/unions searched for a member.
const MAX_ANON_DEPTH: usize = 32;
/// Bound on the members looked at to find one (task_struct, the largest,
/// has a few hundred including its anonymous members): a malformed file can
/// make anonymous members repeat exponentially.
const MAX_MEMBER_VISITS: usize = 100_000;

/// Why BTF could not be read or a member could not be found in it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "kernel BTF not found at {}: {source} (the kernel must be built with CONFIG_DEBUG_INFO_BTF=y)",
        path.display()
    )]
    NotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read kernel BTF at {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("struct {0} not found in kernel BTF (no complete struct or union of that name)")]
    StructNotFound(String),
    #[error("struct {struct_name} has no member {member}{context}")]
    NoMember {
        /// The struct (or union) searched, `<anonymous>` for an unnamed one.
        struct_name: String,
        member: String,
        /// ` (resolving outer.a.b)` for nested paths, empty otherwise.
        context: String,
    },
    #[error(
        "member {path} of struct {struct_name} is a bitfield; it cannot be read with a plain load"
    )]
    Bitfield { struct_name: String, path: String },
    #[error(
        "member {path} of struct {struct_name} is not a struct or union (a pointer cannot be \
         walked by offsets), so it has no member {member}"
    )]
    NotComposite {
        struct_name: String,
        path: String,
        member: String,
    },
    #[error("member {path} of struct {struct_name} has a type without a size")]
    Unsized { struct_name: String, path: String },
    /// A field path from a hook's argument (`resolve`) cannot be walked.
    #[error("{0}")]
    Field(String),
}

fn malformed(msg: impl Into<String>) -> BtfError {
    BtfError::Malformed(msg.into())
}

/// Where a (possibly nested) member lives in its outermost struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberOffset {
    /// Bytes from the start of the outer struct.
    pub offset: u32,
    /// Bytes of the final member's type, resolved through typedefs and
    /// modifiers; pointers are 8.
    pub size: u32,
}

/// One `struct btf_member`, kept raw: the interpretation of `offset` depends
/// on the kind_flag of the owning struct.
#[derive(Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    offset: u32,
}

/// What a type id is, reduced to what offset lookups need.
#[derive(Clone, Copy)]
enum Ty {
    /// Type id 0, and kinds with no size (functions, variables, sections,
    /// declaration tags).
    Other,
    Int {
        size: u32,
        bits: u8,
        bit_offset: u8,
        signed: bool,
    },
    /// A pointer: the type it points to.
    Ptr(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Composite {
        name_off: u32,
        size: u32,
        first_member: u32,
        members: u16,
        kind_flag: bool,
    },
    Fwd,
    /// const, volatile, restrict, type_tag: the referenced type.
    Ref(u32),
    /// A typedef: its name and the type it names.
    Typedef {
        name_off: u32,
        target: u32,
    },
    /// enum, enum64: their size.
    Enum(u32),
    Float(u32),
    /// A function: its name and its prototype's type id.
    Func {
        name_off: u32,
        proto: u32,
    },
    /// A function prototype: its parameter count, and where their types
    /// start in `KernelBtf::params`.
    FuncProto {
        params: u16,
        first_param: u32,
    },
}

/// A member found by name, possibly inside anonymous members.
struct Found {
    bit_offset: u64,
    bitfield_size: u32,
    type_id: u32,
}

/// The parsed BTF of a kernel (or any BTF blob).
pub struct KernelBtf {
    strings: Vec<u8>,
    /// Indexed by type id; id 0 is void.
    types: Vec<Ty>,
    members: Vec<Member>,
    /// Ids of the named structs and unions, in id order.
    named_composites: Vec<u32>,
    /// The parameter types of every prototype, in order.
    params: Vec<u32>,
    /// The enumerators of the enums in [`KEPT_ENUMS`]: enum name offset,
    /// enumerator name offset, value.
    enumerators: Vec<(u32, u32, i64)>,
}

/// The enums whose enumerators are kept for [`KernelBtf::enumerator`]
/// (`offsets::iov_iter`); a kernel's BTF has some 19,000 enumerators, 0.3 MB
/// held for the daemon's life if all were kept.
const KEPT_ENUMS: [&str; 1] = ["iter_type"];

impl fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelBtf")
            .field("types", &self.types.len().saturating_sub(1))
            .field("members", &self.members.len())
            .field("strings_len", &self.strings.len())
            .finish()
    }
}

/// Bounds-checked reads in the file's byte order.
struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32(&self, off: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }
}

/// The byte range `[hdr_len + off, hdr_len + off + len)` of the file.
fn section(
    what: &str,
    hdr_len: usize,
    off: u32,
    len: u32,
    total: usize,
) -> Result<std::ops::Range<usize>, BtfError> {
    let start = (hdr_len as u64) + u64::from(off);
    let end = start + u64::from(len);
    if end > total as u64 {
        return Err(malformed(format!(
            "{what} section [{start}, {end}) runs past the end of the {total}-byte file"
        )));
    }
    // Both fit in usize: they are at most `total`.
    Ok(start as usize..end as usize)
}

impl KernelBtf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF_PATH))
    }

    /// Reads and parses a raw BTF file (such as `/sys/kernel/btf/vmlinux`).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BtfError::NotFound {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                BtfError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::parse(&data)
    }

    /// Parses raw BTF bytes: header, string section, type section.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let big_endian = match data.get(0..2) {
            Some(m) if u16::from_le_bytes([m[0], m[1]]) == BTF_MAGIC => false,
            Some(m) if u16::from_be_bytes([m[0], m[1]]) == BTF_MAGIC => true,
            Some(m) => {
                return Err(malformed(format!(
                    "bad magic {:#04x}{:02x}, expected 0xeb9f",
                    m[0], m[1]
                )))
            }
            None => return Err(malformed(format!("{}-byte file is too short", data.len()))),
        };
        if data.len() < BTF_HEADER_MIN_LEN {
            return Err(malformed(format!(
                "{}-byte file is shorter than the {BTF_HEADER_MIN_LEN}-byte header",
                data.len()
            )));
        }
        let rd = Reader { data, big_endian };
        let version = data[2];
        if version != BTF_VERSION {
            return Err(malformed(format!(
                "unsupported version {version}, expected {BTF_VERSION}"
            )));
        }
        let header = |off| rd.u32(off).ok_or_else(|| malformed("truncated header"));
        let hdr_len = header(4)? as usize;
        if hdr_len < BTF_HEADER_MIN_LEN || hdr_len > data.len() {
            return Err(malformed(format!(
                "header length {hdr_len} is not within [{BTF_HEADER_MIN_LEN}, {}]",
                data.len()
            )));
        }
        let types = section("type", hdr_len, header(8)?, header(12)?, data.len())?;
        let strings = section("string", hdr_len, header(16)?, header(20)?, data.len())?;
        let strings = &data[strings];
        if strings.first().is_some_and(|&b| b != 0) {
            return Err(malformed("string section does not start with NUL"));
        }

        let mut btf = KernelBtf {
            strings: strings.to_vec(),
            // A type is at least 12 bytes; most vmlinux types carry extra data.
            types: Vec::with_capacity(types.len() / 32 + 1),
            members: Vec::with_capacity(types.len() / 24),
            named_composites: Vec::new(),
            params: Vec::new(),
            enumerators: Vec::new(),
        };
        btf.types.push(Ty::Other); // id 0: void
        btf.parse_types(&rd, types)?;
        Ok(btf)
    }

    fn parse_types(
        &mut self,
        rd: &Reader<'_>,
        range: std::ops::Range<usize>,
    ) -> Result<(), BtfError> {
        let strings_len = self.strings.len();
        let mut pos = range.start;
        while pos < range.end {
            let id = self.types.len();
            let truncated = || {
                malformed(format!(
                    "type id {id} at byte {pos} is truncated by the end of the type section"
                ))
            };
            let word = |off: usize| -> Result<u32, BtfError> {
                if off + 4 > range.end {
                    return Err(truncated());
                }
                rd.u32(off).ok_or_else(truncated)
            };
            let name_off = word(pos)?;
            let info = word(pos + 4)?;
            let size_or_type = word(pos + 8)?;
            if name_off != 0 && name_off as usize >= strings_len {
                return Err(malformed(format!(
                    "type id {id} has name offset {name_off} beyond the {strings_len}-byte string section"
                )));
            }
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let extra = pos + BTF_TYPE_LEN;
            let (ty, extra_len) = match kind {
                BTF_KIND_INT => {
                    let enc = word(extra)?;
                    (
                        Ty::Int {
                            size: size_or_type,
                            bits: (enc & 0xff) as u8,
                            bit_offset: ((enc >> 16) & 0xff) as u8,
                            // BTF_INT_SIGNED in the encoding nibble.
                            signed: (enc >> 24) & 1 == 1,
                        },
                        4,
                    )
                }
                BTF_KIND_PTR => (Ty::Ptr(size_or_type), 0),
                BTF_KIND_ARRAY => {
                    let elem = word(extra)?;
                    let nelems = word(extra + 8)?;
                    (Ty::Array { elem, nelems }, 12)
                }
                BTF_KIND_STRUCT | BTF_KIND_UNION => {
                    let len = vlen * 12;
                    if extra + len > range.end {
                        return Err(truncated());
                    }
                    let first_member = u32::try_from(self.members.len())
                        .map_err(|_| malformed("too many struct members"))?;
                    for i in 0..vlen {
                        let m = extra + i * 12;
                        self.members.push(Member {
                            name_off: word(m)?,
                            type_id: word(m + 4)?,
                            offset: word(m + 8)?,
                        });
                    }
                    if name_off != 0 {
                        self.named_composites.push(id as u32);
                    }
                    (
                        Ty::Composite {
                            name_off,
                            size: size_or_type,
                            first_member,
                            members: vlen as u16,
                            kind_flag,
                        },
                        len,
                    )
                }
                BTF_KIND_ENUM => {
                    if self.keeps_enum(name_off) {
                        for i in 0..vlen {
                            let at = extra + i * 8;
                            let value = i64::from(word(at + 4)? as i32);
                            self.enumerators.push((name_off, word(at)?, value));
                        }
                    }
                    (Ty::Enum(size_or_type), vlen * 8)
                }
                BTF_KIND_ENUM64 => {
                    if self.keeps_enum(name_off) {
                        for i in 0..vlen {
                            let at = extra + i * 12;
                            let value = u64::from(word(at + 8)?) << 32 | u64::from(word(at + 4)?);
                            self.enumerators.push((name_off, word(at)?, value as i64));
                        }
                    }
                    (Ty::Enum(size_or_type), vlen * 12)
                }
                BTF_KIND_FWD => (Ty::Fwd, 0),
                BTF_KIND_TYPEDEF => (
                    Ty::Typedef {
                        name_off,
                        target: size_or_type,
                    },
                    0,
                ),
                BTF_KIND_VOLATILE | BTF_KIND_CONST | BTF_KIND_RESTRICT | BTF_KIND_TYPE_TAG => {
                    (Ty::Ref(size_or_type), 0)
                }
                BTF_KIND_FUNC => (
                    Ty::Func {
                        name_off,
                        proto: size_or_type,
                    },
                    0,
                ),
                BTF_KIND_FUNC_PROTO => {
                    let first_param = u32::try_from(self.params.len())
                        .map_err(|_| malformed("too many prototype parameters"))?;
                    for i in 0..vlen {
                        // `struct btf_param`: name_off, then type.
                        self.params.push(word(extra + i * 8 + 4)?);
                    }
                    let proto = Ty::FuncProto {
                        params: vlen as u16,
                        first_param,
                    };
                    (proto, vlen * 8)
                }
                BTF_KIND_VAR => (Ty::Other, 4),
                BTF_KIND_DATASEC => (Ty::Other, vlen * 12),
                BTF_KIND_FLOAT => (Ty::Float(size_or_type), 0),
                BTF_KIND_DECL_TAG => (Ty::Other, 4),
                other => {
                    return Err(malformed(format!(
                        "type id {id} at byte {pos} has unknown kind {other}"
                    )))
                }
            };
            let next = extra + extra_len;
            if next > range.end {
                return Err(truncated());
            }
            self.types.push(ty);
            pos = next;
        }
        if self.types.len() > u32::MAX as usize {
            return Err(malformed("too many types"));
        }
        Ok(())
    }

    /// The BTF type id of kernel function `name` (what a trampoline
    /// program is attached by).
    pub fn function_id(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|ty| matches!(ty, Ty::Func { name_off, .. } if self.name_eq(*name_off, name.as_bytes())))
            .map(|id| id as u32)
            .ok_or_else(|| BtfError::StructNotFound(format!("function {name}")))
    }

    /// How many parameters kernel function `name` takes.
    pub fn function_params(&self, name: &str) -> Result<u32, BtfError> {
        let id = self.function_id(name)?;
        let Ty::Func { proto, .. } = self.ty(id)? else {
            return Err(malformed(format!("function {name}: not a function")));
        };
        match self.ty(proto)? {
            Ty::FuncProto { params, .. } => Ok(u32::from(params)),
            _ => Err(malformed(format!(
                "function {name}: its type is not a prototype"
            ))),
        }
    }

    /// How many arguments raw tracepoint `event` passes (its `TP_PROTO`):
    /// the kernel's `btf_trace_<event>` is a pointer to a prototype whose
    /// first parameter (`void *__data`) is not one of them.
    pub fn raw_tracepoint_args(&self, event: &str) -> Result<u32, BtfError> {
        let name = format!("btf_trace_{event}");
        let target = self
            .types
            .iter()
            .find_map(|ty| match ty {
                Ty::Typedef { name_off, target } if self.name_eq(*name_off, name.as_bytes()) => {
                    Some(*target)
                }
                _ => None,
            })
            .ok_or_else(|| BtfError::StructNotFound(format!("raw tracepoint {event} ({name})")))?;
        let bad = || malformed(format!("{name} is not a pointer to a prototype"));
        let Ty::Ptr(proto) = self.resolve(target)?.1 else {
            return Err(bad());
        };
        match self.resolve(proto)?.1 {
            Ty::FuncProto { params, .. } if params > 0 => Ok(u32::from(params) - 1),
            _ => Err(bad()),
        }
    }

    /// Number of types (not counting void).
    pub fn type_count(&self) -> usize {
        self.types.len().saturating_sub(1)
    }

    /// The offset and size of `struct_name.path[0].path[1]...`, walking
    /// embedded structs and unions (not pointers). Members of anonymous
    /// structs/unions are found as if they were members of the enclosing one.
    /// An empty path gives offset 0 and the size of the struct.
    pub fn member_offset(
        &self,
        struct_name: &str,
        path: &[&str],
    ) -> Result<MemberOffset, BtfError> {
        let root = self.find_composite(struct_name)?;
        let mut type_id = root;
        let mut bits: u64 = 0;
        for (i, &component) in path.iter().enumerate() {
            let so_far = || path[..i].join(".");
            let (cid, ty) = self.resolve(type_id)?;
            let Ty::Composite { name_off, .. } = ty else {
                return Err(BtfError::NotComposite {
                    struct_name: struct_name.to_string(),
                    path: so_far(),
                    member: component.to_string(),
                });
            };
            let mut budget = MAX_MEMBER_VISITS;
            let found = self
                .find_member(cid, component.as_bytes(), 0, &mut budget)?
                .ok_or_else(|| BtfError::NoMember {
                    struct_name: match self.name(name_off) {
                        n if n.is_empty() => "<anonymous>".to_string(),
                        n => n.into_owned(),
                    },
                    member: component.to_string(),
                    context: if path.len() > 1 {
                        format!(" (resolving {struct_name}.{})", path.join("."))
                    } else {
                        String::new()
                    },
                })?;
            if found.bitfield_size != 0 {
                return Err(BtfError::Bitfield {
                    struct_name: struct_name.to_string(),
                    path: path[..=i].join("."),
                });
            }
            bits += found.bit_offset;
            type_id = found.type_id;
        }
        let bitfield = || BtfError::Bitfield {
            struct_name: struct_name.to_string(),
            path: path.join("."),
        };
        // Old-style bitfields (kind_flag clear) are ints narrower than their
        // storage, or members not starting on a byte.
        if let (
            _,
            Ty::Int {
                size,
                bits: int_bits,
                bit_offset,
                ..
            },
        ) = self.resolve(type_id)?
        {
            if bit_offset != 0 || u64::from(int_bits) != u64::from(size) * 8 {
                return Err(bitfield());
            }
        }
        if !bits.is_multiple_of(8) {
            return Err(bitfield());
        }
        let offset = u32::try_from(bits / 8).map_err(|_| {
            malformed(format!(
                "offset of {struct_name}.{} overflows",
                path.join(".")
            ))
        })?;
        let size = self.size_of(type_id)?.ok_or_else(|| BtfError::Unsized {
            struct_name: struct_name.to_string(),
            path: path.join("."),
        })?;
        Ok(MemberOffset { offset, size })
    }

    /// The first struct or union of that name with members; failing that,
    /// the first complete one (an empty struct); never a forward declaration.
    /// The value of enumerator `name` of `enum enum_name` (`ITER_UBUF` of
    /// `iter_type`), which must be one of [`KEPT_ENUMS`].
    pub fn enumerator(&self, enum_name: &str, name: &str) -> Option<i64> {
        debug_assert!(KEPT_ENUMS.contains(&enum_name), "{enum_name} is not kept");
        self.enumerators
            .iter()
            .find(|(enum_off, name_off, _)| {
                self.name_eq(*enum_off, enum_name.as_bytes())
                    && self.name_eq(*name_off, name.as_bytes())
            })
            .map(|(_, _, value)| *value)
    }

    fn keeps_enum(&self, name_off: u32) -> bool {
        name_off != 0
            && KEPT_ENUMS
                .iter()
                .any(|e| self.name_eq(name_off, e.as_bytes()))
    }

    fn find_composite(&self, name: &str) -> Result<u32, BtfError> {
        let mut empty = None;
        for &id in &self.named_composites {
            if let Some(Ty::Composite {
                name_off, members, ..
            }) = self.types.get(id as usize)
            {
                if self.name_eq(*name_off, name.as_bytes()) {
                    if *members > 0 {
                        return Ok(id);
                    }
                    empty.get_or_insert(id);
                }
            }
        }
        empty.ok_or_else(|| BtfError::StructNotFound(name.to_string()))
    }

    /// Searches the members of composite `id` for `name`, descending into
    /// unnamed struct/union members.
    fn find_member(
        &self,
        id: u32,
        name: &[u8],
        depth: usize,
        budget: &mut usize,
    ) -> Result<Option<Found>, BtfError> {
        let Some(&Ty::Composite {
            first_member,
            members,
            kind_flag,
            ..
        }) = self.types.get(id as usize)
        else {
            return Ok(None);
        };
        let start = first_member as usize;
        let members = self
            .members
            .get(start..start + usize::from(members))
            .ok_or_else(|| malformed(format!("type id {id} has members out of range")))?;
        for m in members {
            *budget = budget
                .checked_sub(1)
                .ok_or_else(|| malformed("anonymous members nest too widely (cycle?)"))?;
            let (bit_offset, bitfield_size) = if kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            if m.name_off != 0 && self.name_eq(m.name_off, name) {
                return Ok(Some(Found {
                    bit_offset: u64::from(bit_offset),
                    bitfield_size,
                    type_id: m.type_id,
                }));
            }
            if (m.name_off == 0 || self.name_bytes(m.name_off).is_empty()) && depth < MAX_ANON_DEPTH
            {
                let (inner, ty) = self.resolve(m.type_id)?;
                if matches!(ty, Ty::Composite { .. }) {
                    if let Some(found) = self.find_member(inner, name, depth + 1, budget)? {
                        return Ok(Some(Found {
                            bit_offset: found.bit_offset + u64::from(bit_offset),
                            ..found
                        }));
                    }
                }
            }
        }
        Ok(None)
    }

    fn ty(&self, id: u32) -> Result<Ty, BtfError> {
        self.types.get(id as usize).copied().ok_or_else(|| {
            malformed(format!(
                "reference to type id {id}, but there are only {} types",
                self.type_count()
            ))
        })
    }

    /// Follows typedefs and modifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Result<(u32, Ty), BtfError> {
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.ty(id)? {
                Ty::Ref(next) | Ty::Typedef { target: next, .. } => id = next,
                ty => return Ok((id, ty)),
            }
        }
        Err(malformed(format!(
            "type reference chain through id {id} is too long (cycle?)"
        )))
    }

    /// Size in bytes of a type, `None` for void, functions and forward
    /// declarations.
    fn size_of(&self, id: u32) -> Result<Option<u32>, BtfError> {
        let mut id = id;
        let mut count: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let elem_size = match self.resolve(id)?.1 {
                Ty::Array { elem, nelems } => {
                    count *= u64::from(nelems);
                    // Stays small: a larger product overflows u32 anyway.
                    count = count.min(u64::from(u32::MAX) + 1);
                    id = elem;
                    continue;
                }
                Ty::Int { size, .. }
                | Ty::Enum(size)
                | Ty::Float(size)
                | Ty::Composite { size, .. } => size,
                Ty::Ptr(_) => POINTER_SIZE,
                // `resolve` never returns a Ref or a Typedef.
                Ty::Fwd
                | Ty::Other
                | Ty::Ref(_)
                | Ty::Typedef { .. }
                | Ty::Func { .. }
                | Ty::FuncProto { .. } => return Ok(None),
            };
            return u32::try_from(count * u64::from(elem_size))
                .map(Some)
                .map_err(|_| malformed(format!("size of type id {id} overflows")));
        }
        Err(malformed(format!(
            "array nesting through type id {id} is too deep"
        )))
    }

    fn name_bytes(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        &s[..end]
    }

    fn name(&self, off: u32) -> Cow<'_, str> {
        String::from_utf8_lossy(self.name_bytes(off))
    }

    /// Whether the NUL-terminated string at `off` is exactly `name`.
    fn name_eq(&self, off: u32, name: &[u8]) -> bool {
        let off = off as usize;
        let Some(end) = off.checked_add(name.len()) else {
            return false;
        };
        self.strings.get(off..end) == Some(name) && self.strings.get(end).is_none_or(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn kernel() -> KernelBtf {
        let path = Path::new(VMLINUX_BTF_PATH);
        assert!(
            path.exists(),
            "{VMLINUX_BTF_PATH} is absent: these tests need a kernel with CONFIG_DEBUG_INFO_BTF"
        );
        let data = std::fs::read(path).expect("read vmlinux BTF");
        // Warm up once, then time the best of a few runs.
        let mut best = std::time::Duration::MAX;
        let mut btf = None;
        for _ in 0..5 {
            let start = Instant::now();
            let parsed = KernelBtf::parse(&data).expect("parse vmlinux BTF");
            best = best.min(start.elapsed());
            btf = Some(parsed);
        }
        let btf = btf.expect("parsed");
        println!(
            "parsed {} bytes of vmlinux BTF ({} types, {} members) in {:?} (best of 5)",
            data.len(),
            btf.type_count(),
            btf.members.len(),
            best
        );
        btf
    }

    fn off(btf: &KernelBtf, s: &str, path: &[&str]) -> MemberOffset {
        let r = btf
            .member_offset(s, path)
            .unwrap_or_else(|e| panic!("{s}.{}: {e}", path.join(".")));
        println!(
            "{s}.{} = offset {} size {}",
            path.join("."),
            r.offset,
            r.size
        );
        r
    }

    #[test]
    fn function_parameter_counts() {
        let btf = kernel();
        assert_eq!(
            btf.function_params("security_file_open").expect("exists"),
            1
        );
        assert_eq!(
            btf.function_params("security_file_permission")
                .expect("exists"),
            2
        );
        assert!(btf.function_params("tetragond_no_such_function").is_err());
        let id = btf.function_id("security_file_open").expect("exists");
        assert!(matches!(btf.ty(id), Ok(Ty::Func { .. })));
    }

    #[test]
    fn running_kernel_offsets() {
        let start = Instant::now();
        let btf = KernelBtf::from_sys_fs().expect("kernel BTF");
        println!("from_sys_fs (read + parse) took {:?}", start.elapsed());
        drop(btf);
        let btf = kernel();

        let mm = off(&btf, "task_struct", &["mm"]);
        assert_eq!(mm.size, 8);
        let exit_code = off(&btf, "task_struct", &["exit_code"]);
        assert_eq!(exit_code.size, 4);
        let tgid = off(&btf, "task_struct", &["tgid"]);
        assert_eq!(tgid.size, 4, "pid_t is an int");
        let real_parent = off(&btf, "task_struct", &["real_parent"]);
        assert_eq!(real_parent.size, 8);
        let fs = off(&btf, "task_struct", &["fs"]);
        assert_eq!(fs.size, 8);
        let task_size = off(&btf, "task_struct", &[]).size;
        for m in [mm, exit_code, tgid, real_parent, fs] {
            assert!(m.offset + m.size <= task_size);
        }

        let arg_start = off(&btf, "mm_struct", &["arg_start"]);
        let arg_end = off(&btf, "mm_struct", &["arg_end"]);
        assert_eq!(arg_start.size, 8);
        assert_eq!(arg_end.size, 8);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arg_end.offset, arg_start.offset + 8);
        }

        let f_path = off(&btf, "file", &["f_path"]);
        assert_eq!(f_path.size, 16, "struct path is two pointers");
        let path_dentry = off(&btf, "path", &["dentry"]);
        let dentry = off(&btf, "file", &["f_path", "dentry"]);
        assert_eq!(dentry.size, 8);
        assert_eq!(dentry.offset, f_path.offset + path_dentry.offset);

        let qstr_len = off(&btf, "qstr", &["len"]);
        assert_eq!(qstr_len.size, 4);
        let qstr_name = off(&btf, "qstr", &["name"]);
        assert_eq!(qstr_name.size, 8);
        if cfg!(target_endian = "little") {
            // union { struct { u32 hash; u32 len; }; u64 hash_len; }
            assert_eq!(qstr_len.offset, 4);
            assert_eq!(qstr_name.offset, 8);
        }
        let d_name = off(&btf, "dentry", &["d_name"]);
        let d_name_len = off(&btf, "dentry", &["d_name", "len"]);
        assert_eq!(d_name_len.offset, d_name.offset + qstr_len.offset);
        assert_eq!(d_name_len.size, 4);
        off(&btf, "dentry", &["d_name", "name"]);
        let d_parent = off(&btf, "dentry", &["d_parent"]);
        assert_eq!(d_parent.size, 8);
        let pwd = off(&btf, "fs_struct", &["pwd"]);
        assert_eq!(pwd.size, 16);
        off(&btf, "fs_struct", &["pwd", "dentry"]);

        let err = btf.member_offset("task_struct", &["exit_cod"]).unwrap_err();
        assert_eq!(err.to_string(), "struct task_struct has no member exit_cod");
        let err = btf
            .member_offset("file", &["f_path", "dentryx"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "struct path has no member dentryx (resolving file.f_path.dentryx)"
        );
        let err = btf.member_offset("no_such_struct_xyz", &["a"]).unwrap_err();
        assert!(matches!(err, BtfError::StructNotFound(_)), "{err}");
        // A pointer is not walked.
        let err = btf
            .member_offset("task_struct", &["mm", "arg_start"])
            .unwrap_err();
        assert!(matches!(err, BtfError::NotComposite { .. }), "{err}");
        // `unsigned sched_reset_on_fork:1;`
        let err = btf
            .member_offset("task_struct", &["sched_reset_on_fork"])
            .unwrap_err();
        assert!(matches!(err, BtfError::Bitfield { .. }), "{err}");
        println!("{err}");
    }

    #[test]
    fn missing_file_error() {
        let err = KernelBtf::from_file(Path::new("/nonexistent/btf/vmlinux")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("kernel BTF not found at /nonexistent/btf/vmlinux: "),
            "{err}"
        );
    }

    /// Builds a BTF blob from raw type words and a string table.
    struct Builder {
        strings: Vec<u8>,
        types: Vec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                strings: vec![0],
                types: Vec::new(),
            }
        }
        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }
        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        fn ty(&mut self, name: &str, kind: u32, kind_flag: bool, vlen: u32, size_or_type: u32) {
            let name = self.str(name);
            let info = (kind << 24) | vlen | if kind_flag { 1 << 31 } else { 0 };
            self.words(&[name, info, size_or_type]);
        }
        fn member(&mut self, name: &str, type_id: u32, offset: u32) {
            let name = self.str(name);
            self.words(&[name, type_id, offset]);
        }
        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.push(1); // version
            out.push(0); // flags
            let type_len = self.types.len() as u32;
            for w in [24u32, 0, type_len, type_len, self.strings.len() as u32] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// ```c
    /// typedef int u32_t;                                   // 1: int, 2: typedef
    /// struct outer { int a; union { u32_t b; int c; }; };  // 4, 3: anon union
    /// enum e { X, Y };                                     // 5
    /// int f(int, int);                                     // 6: proto, 7: func
    /// struct bits { int f:3; int g; };                     // 8 (kind_flag)
    /// struct wrap { char pad[4]; struct outer o; int *p; }; // 9: char, 10: array, 11, 12: ptr
    /// struct old { int h:5; };                             // 13: int bits 5, 14
    /// typedef loop1 loop2; typedef loop2 loop1;            // 15, 16
    /// struct cyc { loop1 x; };                             // 17
    /// struct outer;                                        // 18: fwd (after the real one)
    /// typedef void (*btf_trace_ev)(int, int);              // 19: ptr to 6, 20
    /// ```
    fn synthetic() -> Vec<u8> {
        let mut b = Builder::new();
        b.ty("int", BTF_KIND_INT, false, 0, 4); // 1
        b.words(&[(1 << 24) | 32]); // signed, 32 bits
        b.ty("u32_t", BTF_KIND_TYPEDEF, false, 0, 1); // 2
        b.ty("", BTF_KIND_UNION, false, 2, 4); // 3
        b.member("b", 2, 0);
        b.member("c", 1, 0);
        b.ty("outer", BTF_KIND_STRUCT, false, 2, 12); // 4
        b.member("a", 1, 0);
        b.member("", 3, 64);
        b.ty("e", BTF_KIND_ENUM, false, 2, 4); // 5
        let (x, y) = (b.str("X"), b.str("Y"));
        b.words(&[x, 0, y, 1]);
        b.ty("", BTF_KIND_FUNC_PROTO, false, 2, 1); // 6
        b.words(&[0, 1, 0, 1]);
        b.ty("f", BTF_KIND_FUNC, false, 0, 6); // 7
        b.ty("bits", BTF_KIND_STRUCT, true, 2, 8); // 8
        b.member("f", 1, 3 << 24);
        b.member("g", 1, 32);
        b.ty("char", BTF_KIND_INT, false, 0, 1); // 9
        b.words(&[8]);
        b.ty("", BTF_KIND_ARRAY, false, 0, 0); // 10
        b.words(&[9, 1, 4]);
        b.ty("wrap", BTF_KIND_STRUCT, false, 3, 24); // 11
        b.member("pad", 10, 0);
        b.member("o", 4, 32);
        b.member("p", 12, 128);
        b.ty("", BTF_KIND_PTR, false, 0, 1); // 12
        b.ty("int5", BTF_KIND_INT, false, 0, 4); // 13
        b.words(&[(1 << 24) | 5]);
        b.ty("old", BTF_KIND_STRUCT, false, 1, 4); // 14
        b.member("h", 13, 0);
        b.ty("loop2", BTF_KIND_TYPEDEF, false, 0, 16); // 15
        b.ty("loop1", BTF_KIND_TYPEDEF, false, 0, 15); // 16
        b.ty("cyc", BTF_KIND_STRUCT, false, 1, 4); // 17
        b.member("x", 16, 0);
        b.ty("outer", BTF_KIND_FWD, false, 0, 0); // 18
        b.ty("", BTF_KIND_PTR, false, 0, 6); // 19
        b.ty("btf_trace_ev", BTF_KIND_TYPEDEF, false, 0, 19); // 20
        b.build()
    }

    #[test]
    fn raw_tracepoint_arguments_leave_out_the_data_pointer() {
        let btf = KernelBtf::parse(&synthetic()).expect("parse");
        assert_eq!(btf.raw_tracepoint_args("ev").expect("found"), 1);
        assert!(btf.raw_tracepoint_args("none").is_err());
    }

    #[test]
    fn synthetic_blob() {
        let btf = KernelBtf::parse(&synthetic()).expect("parse");
        assert_eq!(btf.type_count(), 20);
        let get = |s: &str, p: &[&str]| btf.member_offset(s, p);
        assert_eq!(
            get("outer", &["a"]).unwrap(),
            MemberOffset { offset: 0, size: 4 }
        );
        // Through the anonymous union, and through the typedef for the size.
        assert_eq!(
            get("outer", &["b"]).unwrap(),
            MemberOffset { offset: 8, size: 4 }
        );
        assert_eq!(
            get("outer", &["c"]).unwrap(),
            MemberOffset { offset: 8, size: 4 }
        );
        assert_eq!(
            get("outer", &[]).unwrap(),
            MemberOffset {
                offset: 0,
                size: 12
            }
        );
        assert_eq!(
            get("wrap", &["pad"]).unwrap(),
            MemberOffset { offset: 0, size: 4 }
        );
        assert_eq!(
            get("wrap", &["o", "b"]).unwrap(),
            MemberOffset {
                offset: 12,
                size: 4
            }
        );
        assert_eq!(
            get("wrap", &["p"]).unwrap(),
            MemberOffset {
                offset: 16,
                size: 8
            }
        );
        assert_eq!(
            get("bits", &["g"]).unwrap(),
            MemberOffset { offset: 4, size: 4 }
        );

        assert_eq!(
            get("outer", &["nope"]).unwrap_err().to_string(),
            "struct outer has no member nope"
        );
        assert_eq!(
            get("wrap", &["o", "nope"]).unwrap_err().to_string(),
            "struct outer has no member nope (resolving wrap.o.nope)"
        );
        assert!(matches!(
            get("bits", &["f"]),
            Err(BtfError::Bitfield { .. })
        ));
        assert!(matches!(get("old", &["h"]), Err(BtfError::Bitfield { .. })));
        assert!(matches!(
            get("wrap", &["p", "x"]),
            Err(BtfError::NotComposite { .. })
        ));
        assert!(matches!(get("e", &[]), Err(BtfError::StructNotFound(_))));
        assert!(matches!(get("cyc", &["x"]), Err(BtfError::Malformed(_))));
        assert!(matches!(
            get("cyc", &["x", "y"]),
            Err(BtfError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_and_garbage_blobs_fail_cleanly() {
        let blob = synthetic();
        for len in 0..blob.len() {
            assert!(
                KernelBtf::parse(&blob[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        // Cut the type section short while keeping a consistent header.
        for cut in 1..12 {
            let mut b = blob.clone();
            let type_len = u32::from_le_bytes(b[12..16].try_into().unwrap());
            let new_len = type_len - cut;
            b[12..16].copy_from_slice(&new_len.to_le_bytes());
            b[16..20].copy_from_slice(&new_len.to_le_bytes());
            let strings = b[24 + type_len as usize..].to_vec();
            b.truncate(24 + new_len as usize);
            b.extend_from_slice(&strings);
            assert!(KernelBtf::parse(&b).is_err(), "type section cut by {cut}");
        }
        // Huge section offsets must not overflow.
        let mut b = blob.clone();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(KernelBtf::parse(&b).is_err());
        let mut b = blob.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(KernelBtf::parse(&b).is_err());
        assert!(KernelBtf::parse(b"not btf at all, just some text").is_err());

        // A struct whose anonymous members contain itself, twice: a cycle
        // that would take 2^depth steps to explore.
        let mut boom = Builder::new();
        boom.ty("boom", BTF_KIND_STRUCT, false, 2, 4); // 1
        boom.member("", 1, 0);
        boom.member("", 1, 0);
        let btf = KernelBtf::parse(&boom.build()).expect("parse");
        let start = Instant::now();
        assert!(matches!(
            btf.member_offset("boom", &["x"]),
            Err(BtfError::Malformed(_))
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));

        // Random garbage behind a valid header, and random byte flips of a
        // valid blob: errors or nonsense, never a panic or a hang.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut b = blob.clone();
            for _ in 0..(rand() % 8 + 1) {
                let i = (rand() as usize) % b.len();
                b[i] = rand() as u8;
            }
            if let Ok(btf) = KernelBtf::parse(&b) {
                for (s, p) in [
                    ("outer", &["b"][..]),
                    ("wrap", &["o", "c"]),
                    ("wrap", &["p"]),
                    ("cyc", &["x"]),
                    ("bits", &["g"]),
                ] {
                    let _ = btf.member_offset(s, p);
                }
            }
        }
        for _ in 0..200 {
            let mut b = blob[..24].to_vec();
            let n = blob.len() - 24;
            b.extend((0..n).map(|_| rand() as u8));
            let _ = KernelBtf::parse(&b).map(|btf| btf.member_offset("outer", &["b"]));
        }

        // Truncating the real vmlinux BTF.
        if let Ok(data) = std::fs::read(VMLINUX_BTF_PATH) {
            for len in [0, 1, 2, 3, 23, 24, 25, 1000, data.len() / 2, data.len() - 1] {
                assert!(
                    KernelBtf::parse(&data[..len]).is_err(),
                    "vmlinux cut at {len}"
                );
            }
        }
    }
}
