//! Tetragon's Override on uprobes: the registers the process goes on with,
//! as `argRegs` assignments (`rax=5`, `rax=%rdi`, `rsp=8%rsp`,
//! `rip=(%rsp)`, `rbp=-16(%rsp)`), or by default a return from the probed
//! function at once with `argError` in `rax`. `uprobe_dispatch_regs` makes
//! them, in order.

use tetragond_ebpf::{reg_source, RegAssign, RegOverride, MAX_REG_ASSIGNMENTS};

/// Where an Override's uprobe is, for what it may do there.
#[derive(Debug, Clone, Copy)]
pub struct RegsSite {
    /// Why the kernel cannot change a uprobe's registers, if it cannot
    /// (said after the policy's own errors, so those read alike on every
    /// kernel).
    pub kernel_denied: Option<&'static str>,
    /// Every location of the hook is a function's entry (a symbol): the
    /// default Override returns from there.
    pub at_entry: bool,
}

/// The assignments of an Override: `arg_regs`, or without them the return
/// from the function with `arg_error`, as Tetragon makes it.
pub fn override_of(
    arg_regs: &[String],
    arg_error: Option<i32>,
    site: RegsSite,
) -> Result<RegOverride, String> {
    let default;
    let assignments: &[String] = match (arg_regs.is_empty(), arg_error) {
        (true, None) => return Err("Override needs argError (the value returned) or argRegs".into()),
        (false, Some(_)) => {
            return Err(
                "argError is not used with argRegs: the registers are as argRegs say (set rax there)"
                    .into(),
            )
        }
        (true, Some(_)) if !site.at_entry => {
            return Err("Override without argRegs returns from the function at once, so its uprobe must be at a function's entry (symbols, not offsets)".into())
        }
        (true, Some(errno)) => {
            // Tetragon's default: the value in rax, then return to the
            // caller (the return address is on top of the stack).
            default = [
                format!("rax={}", i64::from(errno)),
                "rip=(%rsp)".to_string(),
                "rsp=8%rsp".to_string(),
            ];
            &default
        }
        (false, None) => arg_regs,
    };
    if assignments.len() > MAX_REG_ASSIGNMENTS {
        return Err(format!(
            "argRegs has {} assignments: at most {MAX_REG_ASSIGNMENTS}",
            assignments.len()
        ));
    }
    let mut out = RegOverride {
        n: assignments.len() as u32,
        ..Default::default()
    };
    for (slot, text) in out.assign.iter_mut().zip(assignments) {
        *slot = assignment(text).map_err(|why| format!("argRegs {text:?}: {why}"))?;
    }
    Ok(out)
}

/// A register an Override may read or write: its `pt_regs` offset and
/// width. The general-purpose registers by any of their names, `rip`.
fn register(name: &str) -> Result<(u16, u8), String> {
    match name {
        "rip" => Ok((128, 8)),
        _ => crate::usdt::register_at(name).ok_or_else(|| format!("no register named {name:?}")),
    }
}

/// The pieces of an assignment's value.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Number(&'a str),
    Register(&'a str),
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = vec![];
    let mut rest = text.trim_start();
    while let Some(c) = rest.chars().next() {
        let word_end = |s: &str| {
            s.find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(s.len())
        };
        let taken = match c {
            '(' => {
                out.push(Token::Open);
                1
            }
            ')' => {
                out.push(Token::Close);
                1
            }
            '%' => {
                let n = word_end(&rest[1..]);
                if n == 0 {
                    return Err("a register name must follow % at once".into());
                }
                out.push(Token::Register(&rest[1..1 + n]));
                1 + n
            }
            '-' | '0'..='9' => {
                let n = 1 + word_end(&rest[1..]);
                out.push(Token::Number(&rest[..n]));
                n
            }
            _ => return Err(format!("unexpected {c:?}")),
        };
        rest = rest[taken..].trim_start();
    }
    Ok(out)
}

/// A number as Tetragon reads it: decimal, `0x` hex or `0` octal, negative
/// ones as two's complement.
fn number(text: &str) -> Result<u64, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse()
    }
    .map_err(|_| format!("{text:?} is not a number"))?;
    if negative {
        i64::try_from(value)
            .map(|v| v.wrapping_neg() as u64)
            .map_err(|_| format!("{text:?} is out of range"))
    } else {
        Ok(value)
    }
}

/// One `DST=VALUE` assignment.
fn assignment(text: &str) -> Result<RegAssign, String> {
    let mut sides = text.split('=');
    let (Some(dst), Some(value), None) = (sides.next(), sides.next(), sides.next()) else {
        return Err("not one assignment REGISTER=VALUE".into());
    };
    let (dst, dst_size) = register(dst.trim())?;
    let mut a = RegAssign {
        dst,
        dst_size,
        ..Default::default()
    };
    let mut source = |kind, name: &str, off| -> Result<(), String> {
        let (src, src_size) = register(name)?;
        (a.kind, a.src, a.src_size, a.off) = (kind, src, src_size, off);
        Ok(())
    };
    match tokens(value)?.as_slice() {
        [Token::Number(n)] => {
            a.kind = reg_source::CONST;
            a.off = number(n)?;
        }
        [Token::Register(r)] => source(reg_source::REG, r, 0)?,
        [Token::Number(n), Token::Register(r)] => source(reg_source::REG_OFF, r, number(n)?)?,
        [Token::Open, Token::Register(r), Token::Close] => source(reg_source::REG_DEREF, r, 0)?,
        [Token::Number(n), Token::Open, Token::Register(r), Token::Close] => {
            source(reg_source::REG_DEREF, r, number(n)?)?
        }
        _ => return Err("the value is a number, %REG, NUMBER%REG, (%REG) or NUMBER(%REG)".into()),
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: RegsSite = RegsSite {
        kernel_denied: None,
        at_entry: true,
    };

    fn one(text: &str) -> Result<RegAssign, String> {
        assignment(text)
    }

    #[test]
    fn assignments_read_as_tetragon_reads_them() {
        let a = one("rax=010").unwrap();
        assert_eq!(
            (a.kind, a.dst, a.dst_size, a.off),
            (reg_source::CONST, 80, 8, 8)
        );
        assert_eq!(one("rbx=-1").unwrap().off, u64::MAX);
        assert_eq!(one("rax=0xffffffffffffffff").unwrap().off, u64::MAX);
        let a = one("rsp = %rax").unwrap();
        assert_eq!(
            (a.kind, a.dst, a.src, a.src_size),
            (reg_source::REG, 152, 80, 8)
        );
        let a = one("rbp = 010 %rax").unwrap();
        assert_eq!(
            (a.kind, a.dst, a.src, a.off),
            (reg_source::REG_OFF, 32, 80, 8)
        );
        let a = one("rip=(%rsp)").unwrap();
        assert_eq!(
            (a.kind, a.dst, a.src, a.off),
            (reg_source::REG_DEREF, 128, 152, 0)
        );
        let a = one("rbp = 0x20 ( %rsp )").unwrap();
        assert_eq!((a.kind, a.src, a.off), (reg_source::REG_DEREF, 152, 0x20));
        assert_eq!(one("rsp=-1372(%rbp)").unwrap().off, (-1372i64) as u64);
        let a = one("eax=%edi").unwrap();
        assert_eq!((a.dst_size, a.src_size), (4, 4));
    }

    #[test]
    fn malformed_assignments_are_refused() {
        for bad in [
            "rax=",
            "=1",
            "rax=1=2",
            "ra x=1",
            "rax=1 2",
            "rax=abc",
            "rbp=0x2 0(%rsp)",
            "rbp=0x20(%rsp",
            "rbp=0x20(%rsp)junk",
            "rbp=0x20(% rsp)",
            "rsp=%rax)",
            "rsp=% rax",
            "rsp=%r ax",
            "rsp=8% rax",
            "rsp=8%rax garbage",
            "rax=0x20()",
            "rax=0x20(%notareg)",
            "orig_rax=1",
            "rax=99999999999999999999",
        ] {
            assert!(one(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_default_override_returns_from_the_function() {
        let ov = override_of(&[], Some(-2), ENTRY).unwrap();
        assert_eq!(ov.n, 3);
        assert_eq!(
            (ov.assign[0].kind, ov.assign[0].dst, ov.assign[0].off),
            (reg_source::CONST, 80, (-2i64) as u64)
        );
        assert_eq!(
            (ov.assign[1].dst, ov.assign[1].kind),
            (128, reg_source::REG_DEREF)
        );
        assert_eq!((ov.assign[2].dst, ov.assign[2].off), (152, 8));
        let inside = RegsSite {
            at_entry: false,
            ..ENTRY
        };
        assert!(override_of(&[], Some(1), inside)
            .unwrap_err()
            .contains("function's entry"));
        assert!(override_of(&["rax=1".into()], None, inside).is_ok());
        assert!(override_of(&["rax=1".into()], Some(1), ENTRY)
            .unwrap_err()
            .contains("not used with argRegs"));
        assert!(override_of(&[], None, ENTRY)
            .unwrap_err()
            .contains("needs argError"));
        let nine: Vec<String> = (0..9).map(|i| format!("rax={i}")).collect();
        assert!(override_of(&nine, None, ENTRY)
            .unwrap_err()
            .contains("at most 8"));
    }
}
