//! `usdts`: a uprobe at every site of the probe `provider:name` that the
//! binary's SDT notes list, each carrying its hook slot as the BPF cookie.
//! Each argument is read where that site's note puts it: a register, or
//! user memory at a register plus a displacement (`usdt::Operand`).

use std::path::Path;

use tetragond_ebpf::{arg_source, ArgSpec, FieldPath};

use super::{
    args::{kind_of, unsupported_arg, ArgClass, Memory},
    meta,
    uprobe::{hook_conf, UserArgs},
    Attach, CompiledHook, HookKind, HookMeta, UprobeLocation, UprobeTarget,
};
use crate::{
    error::CompileError,
    kernel_info::HookCaps,
    policy::model::{ActionType, Arg, TracingPolicy, UsdtSpec},
    usdt::{self, Location, Probe},
};

pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    spec: &UsdtSpec,
    caps: HookCaps,
) -> Result<Vec<CompiledHook>, CompileError> {
    let what = format!("usdts[{hook_index}] {}:{}", spec.provider, spec.name);
    let unsupported = |msg: String| CompileError::Unsupported(format!("{what}: {msg}"));
    if !spec.path.starts_with('/') {
        return Err(CompileError::Invalid(format!(
            "{what}: path must be absolute"
        )));
    }
    let probes = usdt::probes_of(Path::new(&spec.path)).map_err(|e| unsupported(e.to_string()))?;
    let sites: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.provider == spec.provider && p.name == spec.name)
        .collect();
    if sites.is_empty() {
        return Err(unsupported(format!(
            "{} has no USDT probe {}:{} (no such SDT note)",
            spec.path, spec.provider, spec.name
        )));
    }
    let hooks = sites
        .into_iter()
        .map(|site| site_hook(&what, policy, spec, site, caps.write_user))
        .collect::<Result<Vec<_>, _>>()?;
    // After the policy's own errors, which every kernel reports alike.
    if !caps.uprobe_cookies {
        return Err(unsupported(
            "USDT probes are uprobes, which need BPF cookies (bpf_get_attach_cookie, Linux 5.15), which this kernel lacks".into(),
        ));
    }
    Ok(hooks)
}

/// The hook of one site of the probe; `write_user`: the kernel lets
/// programs write user memory (Set).
fn site_hook(
    what: &str,
    policy: &TracingPolicy,
    spec: &UsdtSpec,
    site: &Probe,
    write_user: bool,
) -> Result<CompiledHook, CompileError> {
    let size_register = |index: u32| match site.args.get(index as usize) {
        // A size argument must be a register: its value is read as is.
        Some(Ok(usdt::Operand {
            location: Location::Register { pt_regs },
            ..
        })) => Some(*pt_regs),
        _ => None,
    };
    let read = UserArgs {
        spec: &|arg| arg_spec(what, arg, site),
        size_register: &size_register,
        override_denied: "Override cannot change what a USDT probe does",
        regs: None,
        writable: Some(
            spec.args
                .iter()
                .map(|arg| writable(site, arg, write_user))
                .collect(),
        ),
    };
    let (conf, sel) = hook_conf(what, policy, &spec.args, &spec.selectors, read)?;
    let arg_types = spec
        .args
        .iter()
        .map(|a| (a.ty.as_str().to_string(), a.label.clone()))
        .collect();
    let kind = HookKind::Usdt {
        path: spec.path.clone(),
        provider: spec.provider.clone(),
        name: spec.name.clone(),
    };
    Ok(CompiledHook {
        conf,
        sub_ids: vec![],
        entries: sel.entries,
        meta: HookMeta {
            message: spec.message.clone(),
            tags: spec.tags.clone(),
            daemon_actions: sel.daemon_actions,
            ..meta(policy, kind, arg_types)
        },
        attach: Attach::Uprobe(UprobeTarget {
            binary: spec.path.clone(),
            location: UprobeLocation::Offset(site.file_offset),
            ret: false,
            writes: spec
                .selectors
                .iter()
                .flat_map(|s| s.all_actions())
                .any(|a| a.action == ActionType::Set),
            regs: false,
            semaphore: site.semaphore,
        }),
    })
}

/// Whether Set may write argument `arg.index` of the probe at `site`: as
/// Tetragon asks, 4 bytes of memory at a register plus a displacement
/// (`-4@-20(%rbp)`, a variable the program reads after the probe, or
/// `-4@counter(%rip)`, a global one), and a kernel that lets programs
/// write user memory.
fn writable(site: &Probe, arg: &Arg, write_user: bool) -> Result<(), String> {
    let n = arg.index;
    match site.args.get(n as usize) {
        Some(Ok(usdt::Operand {
            size: 4,
            location: Location::Memory { .. },
            ..
        })) => {}
        Some(Ok(usdt::Operand {
            location: Location::Memory { .. },
            size,
            ..
        })) => {
            return Err(format!(
                "probe argument {n} is {size} bytes: Set writes 4, as in Tetragon"
            ))
        }
        Some(Ok(_)) => {
            return Err(format!(
                "probe argument {n} is in a register, a constant or an indexed element: Set writes memory at a register plus a displacement (an operand like -4@-20(%rbp)), as in Tetragon"
            ))
        }
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err(format!("the probe has no argument {n}")),
    }
    if !write_user {
        return Err(
            "the kernel is locked down (/sys/kernel/security/lockdown), which refuses programs that write user memory (bpf_probe_write_user)"
                .into(),
        );
    }
    Ok(())
}

/// `value` as an operand of `size` bytes holds it: its low bytes, then
/// sign- or zero-extended.
fn as_operand(value: i64, size: u8, signed: bool) -> i64 {
    let unused = 64 - 8 * u32::from(size.clamp(1, 8));
    if signed {
        (value << unused) >> unused
    } else {
        ((value as u64) << unused >> unused) as i64
    }
}

/// Argument `arg.index` of the probe at `site`, read as its note says and
/// interpreted as `arg.ty` says.
fn arg_spec(what: &str, arg: &Arg, site: &Probe) -> Result<ArgSpec, CompileError> {
    let refuse = |msg: String| unsupported_arg(what, arg.index, msg);
    let operand = match site.args.get(arg.index as usize) {
        Some(Ok(operand)) => *operand,
        Some(Err(e)) => return Err(refuse(e.to_string())),
        None => {
            return Err(refuse(format!(
                "the probe has {} arguments",
                site.args.len()
            )))
        }
    };
    let (kind, class) = kind_of(arg.ty, Memory::User).map_err(refuse)?;
    let signed = u8::from(operand.signed);
    Ok(match operand.location {
        Location::Constant(value) => {
            if class != ArgClass::Integer {
                return Err(refuse(format!(
                    "the probe passes the constant {value} here, which is not read as a {}",
                    arg.ty
                )));
            }
            let value = as_operand(value, operand.size, operand.signed);
            let value = i32::try_from(value).map_err(|_| {
                refuse(format!(
                    "the constant {value} is beyond the 32-bit constants served"
                ))
            })?;
            ArgSpec::constant(value, kind)
        }
        Location::Register { pt_regs } => ArgSpec {
            offset: pt_regs,
            size: operand.size,
            signed,
            kind,
            ..Default::default()
        },
        Location::Memory {
            base_pt_regs,
            displacement,
        } => match i16::try_from(displacement) {
            Ok(near) => in_memory(operand, base_pt_regs, near, kind),
            // Farther than the field's offset reaches (a symbol, from the
            // probe's address): the register plus the displacement first.
            Err(_) => ArgSpec {
                field: in_memory(operand, base_pt_regs, 0, kind).field,
                signed,
                ..ArgSpec::relative(base_pt_regs, displacement, kind)
            },
        },
        Location::Address {
            base_pt_regs,
            displacement,
        } => ArgSpec {
            signed: 0,
            ..ArgSpec::relative(base_pt_regs, displacement, kind)
        },
        Location::Indexed {
            base_pt_regs,
            index_pt_regs,
            scale,
            displacement,
        } => ArgSpec {
            source: arg_source::INDEXED,
            index_offset: index_pt_regs,
            index_shift: scale.trailing_zeros() as u8,
            ..in_memory(
                operand,
                base_pt_regs,
                i16::try_from(displacement).map_err(|_| {
                    refuse(format!(
                        "its displacement {displacement} is beyond the ±32 KiB read"
                    ))
                })?,
                kind,
            )
        },
    })
}

/// An operand in user memory, `displacement` bytes from the register at
/// `base_pt_regs` (and an index register, for the caller to add), read as
/// `kind`.
fn in_memory(operand: usdt::Operand, base_pt_regs: u16, displacement: i16, kind: u8) -> ArgSpec {
    ArgSpec {
        offset: base_pt_regs,
        size: 8,
        signed: u8::from(operand.signed),
        kind,
        field: FieldPath {
            present: 1,
            size: operand.size,
            user: 1,
            offset: displacement as u16,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::ArgType;

    #[test]
    fn constants_hold_what_their_operand_holds() {
        assert_eq!(as_operand(-1, 4, true), -1);
        assert_eq!(as_operand(-1, 4, false), 0xffff_ffff);
        assert_eq!(as_operand(0x1_0000_0005, 4, false), 5);
        assert_eq!(as_operand(0xff, 1, true), -1);
        assert_eq!(as_operand(i64::MIN, 8, true), i64::MIN);
    }

    #[test]
    fn a_constant_argument_reads_back_its_value() {
        for v in [0, 5, -1, i32::MAX, i32::MIN] {
            let spec = tetragond_ebpf::ArgSpec::constant(v, tetragond_ebpf::arg_kind::INT);
            assert_eq!(spec.constant_value() as i64, i64::from(v));
        }
    }

    /// `-4@-20(%rbp) 8@-8(%rbp) -4@%edi 4@$5`, at offset 0x1000.
    fn probe() -> Probe {
        let memory = |size, displacement| {
            Ok(usdt::Operand {
                size,
                signed: true,
                location: Location::Memory {
                    base_pt_regs: 32,
                    displacement,
                },
            })
        };
        Probe {
            provider: "p".into(),
            name: "n".into(),
            file_offset: 0x1000,
            semaphore: 0,
            args: vec![
                memory(4, -20),
                memory(8, -8),
                Ok(usdt::Operand {
                    size: 4,
                    signed: true,
                    location: Location::Register { pt_regs: 112 },
                }),
                Ok(usdt::Operand {
                    size: 4,
                    signed: false,
                    location: Location::Constant(5),
                }),
            ],
        }
    }

    #[test]
    fn set_writes_four_bytes_of_memory_where_the_kernel_lets_it() {
        let site = probe();
        let at = |index| Arg::of(index, ArgType::Int32);
        assert_eq!(writable(&site, &at(0), true), Ok(()));
        let refusal =
            |index, write_user| writable(&site, &at(index), write_user).expect_err("refused");
        assert!(refusal(1, true).contains("is 8 bytes: Set writes 4"));
        assert!(refusal(2, true).contains("in a register, a constant"));
        assert!(refusal(3, true).contains("in a register, a constant"));
        assert!(refusal(4, true).contains("no argument 4"));
        assert!(refusal(0, false).contains("locked down"));
    }

    #[test]
    fn an_indexed_element_is_read_at_base_plus_scaled_index() {
        let site = Probe {
            args: vec![usdt::parse_operand("-1@-96(%rbp,%rax,8)", &|_| None)],
            ..probe()
        };
        let spec = arg_spec("t", &Arg::of(0, ArgType::Int8), &site).expect("read");
        assert_eq!(spec.source, arg_source::INDEXED);
        assert_eq!(
            (spec.offset, spec.index_offset, spec.index_shift),
            (32, 80, 3)
        );
        assert_eq!((spec.field.user, spec.field.size), (1, 1));
        assert_eq!(spec.field.offset as i16, -96);
        assert!(writable(&site, &Arg::of(0, ArgType::Int8), true).is_err());
    }

    #[test]
    fn a_symbol_is_read_from_the_probes_address_plus_its_distance() {
        let far = |name: &str| (name == "counter").then_some(0x12_3456);
        let site = Probe {
            args: ["-4@counter(%rip)", "8@$counter", "4@-4(%rbp)"]
                .into_iter()
                .map(|a| usdt::parse_operand(a, &far))
                .collect(),
            ..probe()
        };
        let spec = |index, ty| arg_spec("t", &Arg::of(index, ty), &site).expect("read");
        // In memory: the register plus the displacement, then 4 bytes there.
        let global = spec(0, ArgType::Int32);
        assert_eq!(global.source, arg_source::RELATIVE);
        assert_eq!((global.offset, global.displacement()), (128, 0x12_3456));
        assert_eq!((global.field.present, global.field.user), (1, 1));
        assert_eq!((global.field.size, global.field.offset), (4, 0));
        // By its address: the register plus the displacement, as the value.
        let address = spec(1, ArgType::String);
        assert_eq!(address.source, arg_source::RELATIVE);
        assert_eq!(address.displacement(), 0x12_3456);
        assert_eq!(address.field.present, 0);
        // Near its register: the field's offset, as before.
        let near = spec(2, ArgType::Int32);
        assert_eq!(near.source, arg_source::CONTEXT);
        assert_eq!(near.field.offset as i16, -4);
        // A global can be Set.
        assert_eq!(writable(&site, &Arg::of(0, ArgType::Int32), true), Ok(()));
    }
}
