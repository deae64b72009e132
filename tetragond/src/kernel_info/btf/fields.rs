//! Field paths behind a hook's argument (a policy's `resolve:
//! mm.exe_file.f_path`): the argument's own type from BTF, then each
//! member in turn, embedded ones by offset and pointers by a load.

use super::{malformed, BtfError, KernelBtf, Ty, MAX_MEMBER_VISITS, MAX_RESOLVE_DEPTH};

/// Where an argument's type is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOrigin<'a> {
    /// Parameter `index` of kernel function `name`.
    Function { name: &'a str, index: u32 },
    /// Parameter `index` of LSM hook `hook` (`file_open`: its
    /// `bpf_lsm_file_open` function).
    Lsm { hook: &'a str, index: u32 },
    /// Argument `index` of raw tracepoint `event` (its `TP_PROTO`).
    RawTracepoint { event: &'a str, index: u32 },
    /// A pointer to `struct NAME`, whatever the argument is declared as
    /// (a policy's `btfType`).
    Struct(&'a str),
}

impl ArgOrigin<'_> {
    /// The argument's index, as the policy gives it.
    pub fn index(&self) -> u32 {
        match *self {
            ArgOrigin::Function { index, .. }
            | ArgOrigin::Lsm { index, .. }
            | ArgOrigin::RawTracepoint { index, .. } => index,
            ArgOrigin::Struct(_) => 0,
        }
    }
}

/// What a field path reaches from a pointer argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWalk {
    /// The pointers followed, in order: each is loaded from its offset in
    /// the struct the previous one (or the argument) points at.
    pub loads: Vec<u32>,
    /// The final field's offset in the last struct reached.
    pub offset: u32,
    pub kind: FieldKind,
    /// The final field's C type, for messages (`struct file *`).
    pub type_name: String,
}

/// How the final field can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// An integer or enum of `size` bytes: loaded.
    Int { size: u32, signed: bool },
    /// A pointer: loaded, then what it points at read as the arg's type.
    PointerTo(Pointee),
    /// An array or embedded struct: read where it is.
    Inline(Pointee),
    /// Anything else (floats, functions, ...).
    Other,
}

/// What a pointer points at, or what an inline field holds.
#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum Pointee {
    /// Characters (a string).
    Chars,
    /// `struct NAME` (or union): the id of its type.
    Composite(u32),
    Other,
}

impl KernelBtf {
    /// The type id argument `origin` is declared with (for a `Struct`
    /// origin, none: see `arg_struct`).
    pub fn arg_type(&self, origin: ArgOrigin<'_>) -> Result<u32, BtfError> {
        let function = |name: &str| match self.ty(self.function_id(name)?)? {
            Ty::Func { proto, .. } => Ok(proto),
            _ => Err(malformed(format!("function {name}: not a function"))),
        };
        let (proto, index, what) = match origin {
            ArgOrigin::Struct(name) => {
                return Err(BtfError::Field(format!(
                    "a struct {name} is no argument's declared type"
                )))
            }
            ArgOrigin::Function { name, index } => {
                (function(name)?, index, format!("function {name}"))
            }
            ArgOrigin::Lsm { hook, index } => (
                function(&format!("bpf_lsm_{hook}"))?,
                index,
                format!("LSM hook {hook}"),
            ),
            ArgOrigin::RawTracepoint { event, index } => {
                let typedef = self.raw_tracepoint_typedef(event)?;
                let Ty::Ptr(proto) = self.resolve(typedef)?.1 else {
                    return Err(malformed(format!("btf_trace_{event} is not a pointer")));
                };
                // The first parameter is the probe's `void *__data`.
                (
                    proto,
                    index.saturating_add(1),
                    format!("raw tracepoint {event}"),
                )
            }
        };
        let Ty::FuncProto {
            params,
            first_param,
        } = self.resolve(proto)?.1
        else {
            return Err(malformed(format!("{what}: its type is not a prototype")));
        };
        if index >= u32::from(params) {
            return Err(BtfError::Field(format!(
                "{what} has no argument {} in its BTF prototype",
                origin.index()
            )));
        }
        self.params
            .get(first_param as usize + index as usize)
            .copied()
            .ok_or_else(|| malformed(format!("{what}: parameters out of range")))
    }

    /// The struct (or union) a pointer argument points at: the type id
    /// `walk_fields` starts from.
    pub fn arg_struct(&self, origin: ArgOrigin<'_>) -> Result<u32, BtfError> {
        if let ArgOrigin::Struct(name) = origin {
            return self.find_composite(name);
        }
        let arg = self.arg_type(origin)?;
        if let Ty::Ptr(target) = self.resolve(arg)?.1 {
            if let (id, Ty::Composite { .. }) = self.resolve(target)? {
                return Ok(id);
            }
        }
        Err(BtfError::Field(format!(
            "argument {} is {}, not a pointer to a struct",
            origin.index(),
            self.type_name(arg)
        )))
    }

    /// Walks `path` (member names) from a pointer to struct `start`.
    pub fn walk_fields(&self, start: u32, path: &[&str]) -> Result<FieldWalk, BtfError> {
        let field_error = |msg: String| BtfError::Field(msg);
        let mut current = start;
        let mut loads = Vec::new();
        let mut offset: u64 = 0;
        for (i, &member) in path.iter().enumerate() {
            let (id, ty) = self.resolve(current)?;
            if !matches!(ty, Ty::Composite { .. }) {
                return Err(field_error(format!(
                    "{} is {}, which has no member {member}",
                    path[..i].join("."),
                    self.type_name(current)
                )));
            }
            let mut budget = MAX_MEMBER_VISITS;
            let found = self
                .find_member(id, member.as_bytes(), 0, &mut budget)?
                .ok_or_else(|| {
                    field_error(format!("{} has no member {member}", self.type_name(id)))
                })?;
            let here = path[..=i].join(".");
            if found.bitfield_size != 0
                || found.bit_offset % 8 != 0
                || self.is_bitfield(found.type_id)?
            {
                return Err(field_error(format!(
                    "{here} is a bitfield; only whole bytes can be read"
                )));
            }
            offset += found.bit_offset / 8;
            let offset_u32 = u32::try_from(offset)
                .map_err(|_| malformed(format!("offset of {here} overflows")))?;
            if i + 1 == path.len() {
                return Ok(FieldWalk {
                    loads,
                    offset: offset_u32,
                    kind: self.value_kind(found.type_id)?,
                    type_name: self.type_name(found.type_id),
                });
            }
            match self.resolve(found.type_id)?.1 {
                Ty::Ptr(target) => {
                    loads.push(offset_u32);
                    offset = 0;
                    current = target;
                }
                Ty::Composite { .. } => current = found.type_id,
                _ => {
                    return Err(field_error(format!(
                        "{here} is {}, which has no member {}",
                        self.type_name(found.type_id),
                        path[i + 1]
                    )))
                }
            }
        }
        Err(field_error("the field path is empty".into()))
    }

    /// A C-like name of type `id` (`struct file *`, `char[16]`, `u32`).
    pub fn type_name(&self, id: u32) -> String {
        self.type_name_at(id, 0)
    }

    fn type_name_at(&self, id: u32, depth: usize) -> String {
        if depth >= MAX_RESOLVE_DEPTH {
            return "?".into();
        }
        match self.ty(id) {
            Ok(Ty::Other) if id == 0 => "void".into(),
            Ok(Ty::Int { size, signed, .. }) => {
                // u64: a malformed size must not overflow (found by fuzzing).
                let bits = u64::from(size) * 8;
                format!("{}{bits}", if signed { "s" } else { "u" })
            }
            Ok(Ty::Ptr(target)) => format!("{} *", self.type_name_at(target, depth + 1)),
            Ok(Ty::Array { elem, nelems }) => {
                format!("{}[{nelems}]", self.type_name_at(elem, depth + 1))
            }
            Ok(Ty::Composite { name_off, .. }) => match self.name(name_off) {
                n if n.is_empty() => "struct <anonymous>".into(),
                n => format!("struct {n}"),
            },
            Ok(Ty::Typedef { name_off, .. }) => self.name(name_off).into_owned(),
            Ok(Ty::Ref(target)) => self.type_name_at(target, depth + 1),
            Ok(Ty::Enum(size)) => format!("a {size}-byte enum"),
            Ok(Ty::Float(size)) => format!("a {size}-byte float"),
            Ok(Ty::Fwd) => "a struct declared only".into(),
            Ok(_) | Err(_) => "a type with no size".into(),
        }
    }

    /// How a value of type `id` can be read.
    pub fn value_kind(&self, id: u32) -> Result<FieldKind, BtfError> {
        Ok(match self.resolve(id)?.1 {
            Ty::Int { size, signed, .. } => FieldKind::Int { size, signed },
            // Enums: BTF marks signed ones only from 6.0, read unsigned.
            Ty::Enum(size) => FieldKind::Int {
                size,
                signed: false,
            },
            Ty::Ptr(target) => FieldKind::PointerTo(self.pointee(target)?),
            Ty::Array { elem, .. } => FieldKind::Inline(self.pointee(elem)?),
            Ty::Composite { .. } => FieldKind::Inline(self.pointee(id)?),
            _ => FieldKind::Other,
        })
    }

    fn pointee(&self, id: u32) -> Result<Pointee, BtfError> {
        Ok(match self.resolve(id)?.1 {
            Ty::Int { size: 1, .. } => Pointee::Chars,
            Ty::Composite { .. } => Pointee::Composite(self.resolve(id)?.0),
            _ => Pointee::Other,
        })
    }

    /// The name of composite type `id` (`file` for `struct file`).
    pub fn composite_name(&self, id: u32) -> Option<String> {
        match self.ty(id).ok()? {
            Ty::Composite { name_off, .. } => Some(self.name(name_off).into_owned()),
            _ => None,
        }
    }

    fn is_bitfield(&self, id: u32) -> Result<bool, BtfError> {
        Ok(matches!(
            self.resolve(id)?.1,
            Ty::Int { size, bits, bit_offset, .. }
                if bit_offset != 0 || u64::from(bits) != u64::from(size) * 8
        ))
    }

    fn raw_tracepoint_typedef(&self, event: &str) -> Result<u32, BtfError> {
        let name = format!("btf_trace_{event}");
        self.types
            .iter()
            .position(|ty| matches!(ty, Ty::Typedef { name_off, .. } if self.name_eq(*name_off, name.as_bytes())))
            .map(|p| p as u32)
            .ok_or_else(|| BtfError::StructNotFound(format!("raw tracepoint {event} ({name})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's seed: `struct s { struct s *a; int b; char c[8]; }`,
    /// `int f(struct s *p)`, `bpf_lsm_f` and raw tracepoint `f`.
    fn tiny() -> KernelBtf {
        KernelBtf::parse(include_bytes!("../../../../fuzz/corpus/btf/tiny")).expect("tiny BTF")
    }

    #[test]
    fn fields_are_walked_through_pointers_and_read_as_their_kind() {
        let btf = tiny();
        for origin in [
            ArgOrigin::Function {
                name: "f",
                index: 0,
            },
            ArgOrigin::Lsm {
                hook: "f",
                index: 0,
            },
            ArgOrigin::RawTracepoint {
                event: "f",
                index: 0,
            },
            ArgOrigin::Struct("s"),
        ] {
            let start = btf.arg_struct(origin).expect("struct s");
            let walk = btf.walk_fields(start, &["a", "a", "b"]).expect("a.a.b");
            assert_eq!(walk.loads, vec![0, 0], "{origin:?}");
            assert_eq!(walk.offset, 8);
            assert_eq!(
                walk.kind,
                FieldKind::Int {
                    size: 4,
                    signed: true
                }
            );
            let c = btf.walk_fields(start, &["c"]).expect("c");
            assert_eq!((c.offset, c.kind), (16, FieldKind::Inline(Pointee::Chars)));
            assert_eq!(c.type_name, "u8[8]");
        }
        let err = btf.walk_fields(2, &["b", "x"]).expect_err("b is an int");
        assert!(err.to_string().contains("which has no member x"), "{err}");
        let err = btf.arg_struct(ArgOrigin::Function {
            name: "f",
            index: 1,
        });
        assert!(err.is_err(), "f takes one argument");
    }
}
