//! matchArgs operators on argument data: strings and paths against the
//! `STR_TRIE` LPM trie, socket addresses against `ADDR_TRIE`, ports,
//! families and protocols against the filter's inline values.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_loop, maps::lpm_trie::Key};
use tetragond_ebpf::{
    op, AddrTrieData, ArgFilter, SockInfo, SubstrKey, MAX_ARGS, MAX_VALUES, STR_LEN, STR_MATCH_LEN,
    STR_TRIE_HEADER_BITS, SUBSTR_LEN,
};

use crate::{
    any_value, loop_state, ADDR_TRIE, EVENT_BUF, PATH_BUF, STR_KEY, STR_TRIE, SUBSTRINGS, WINDOW,
};

/// `FilterAt::arg` of a string in `PATH_BUF` rather than an argument slot
/// (the executable's path for matchBinaries).
pub const PATH_BUF_SOURCE: usize = MAX_ARGS;

/// Where the filter's argument is: hook slot, selector, filter, argument.
pub struct FilterAt {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub arg: usize,
}

/// Does a data operator (`op >= STR_EQUAL`) hold for the argument's data?
/// `value` is the argument's value (a string's length).
#[inline(always)]
pub fn data_filter_matches(at: &FilterAt, filter: &ArgFilter, value: u64) -> bool {
    if at.arg >= MAX_ARGS {
        return false;
    }
    let Some(buf) = EVENT_BUF.get_ptr_mut(0) else {
        return false;
    };
    let slot = unsafe { (*buf).data[at.arg].as_ptr() };
    match filter.op {
        op::SUBSTRING | op::SUBSTRING_IGN_CASE => contains(at, filter, value),
        op::STR_EQUAL..=op::NOT_POSTFIX => {
            let found = str_lookup(at, filter.op, slot, value);
            let negated = matches!(
                filter.op,
                op::STR_NOT_EQUAL | op::NOT_PREFIX | op::NOT_POSTFIX
            );
            found != negated
        }
        _ => {
            let sock = unsafe { &*(slot as *const SockInfo) };
            sock_matches(at, filter, sock)
        }
    }
}

/// Looks the string at `slot` (`len` bytes, from argument `at.arg` or
/// `PATH_BUF_SOURCE`) up in `STR_TRIE` for this filter.
#[inline(always)]
pub fn str_lookup(at: &FilterAt, code: u8, slot: *const u8, len: u64) -> bool {
    let Some(key) = STR_KEY.get_ptr_mut(0) else {
        return false;
    };
    let key = unsafe { &mut *key };
    key.data.hook_slot = at.hook_slot;
    key.data.selector = at.selector;
    key.data.filter = at.filter;
    key.data._pad = [0; 2];
    let len = len.min(STR_LEN as u64 - 1);
    let bytes = match code {
        // Equal entries include the NUL, so only the whole string matches.
        op::STR_EQUAL | op::STR_NOT_EQUAL => len + 1,
        _ => len,
    }
    .min(STR_MATCH_LEN as u64);
    if matches!(code, op::POSTFIX | op::NOT_POSTFIX) {
        let mut rev = Reverse {
            arg: at.arg as u64,
            len,
        };
        unsafe {
            bpf_loop(
                bytes as u32,
                reverse_step as *mut c_void,
                (&mut rev as *mut Reverse).cast(),
                0,
            )
        };
    } else {
        let src = unsafe { core::slice::from_raw_parts(slot, STR_MATCH_LEN) };
        if unsafe {
            aya_ebpf::helpers::bpf_probe_read_kernel_buf(src.as_ptr(), &mut key.data.bytes)
        }
        .is_err()
        {
            return false;
        }
    }
    key.prefix_len = STR_TRIE_HEADER_BITS + 8 * bytes as u32;
    STR_TRIE.get(key).is_some()
}

#[repr(C)]
struct Reverse {
    arg: u64,
    len: u64,
}

/// bpf_loop callback: `key.bytes[i] = source[len - 1 - i]`.
#[inline(never)]
extern "C" fn reverse_step(index: u64, ctx: *mut c_void) -> i64 {
    let rev = unsafe { &*(ctx as *const Reverse) };
    let (Some(buf), Some(key)) = (EVENT_BUF.get_ptr_mut(0), STR_KEY.get_ptr_mut(0)) else {
        return 1;
    };
    let arg = rev.arg as usize;
    if arg > PATH_BUF_SOURCE || index >= rev.len || index as usize >= STR_MATCH_LEN {
        return 1;
    }
    let from = (rev.len - 1 - index) as usize & (STR_LEN - 1);
    let byte = if arg == PATH_BUF_SOURCE {
        match PATH_BUF.get(0) {
            Some(path) => path[from],
            None => return 1,
        }
    } else {
        unsafe { (*buf).data[arg][from] }
    };
    unsafe { (*key).data.bytes[index as usize] = byte };
    0
}

#[inline(always)]
fn sock_matches(at: &FilterAt, filter: &ArgFilter, sock: &SockInfo) -> bool {
    let in_port_range = |port: u16| {
        any_value(filter, |v| {
            let (lo, hi) = (v & 0xffff_ffff, v >> 32);
            (lo..=hi).contains(&(port as u64))
        })
    };
    match filter.op {
        op::SADDR => addr_lookup(at, &sock.saddr),
        op::NOT_SADDR => !addr_lookup(at, &sock.saddr),
        op::DADDR => addr_lookup(at, &sock.daddr),
        op::NOT_DADDR => !addr_lookup(at, &sock.daddr),
        op::SPORT => in_port_range(sock.sport),
        op::NOT_SPORT => !in_port_range(sock.sport),
        op::DPORT => in_port_range(sock.dport),
        op::NOT_DPORT => !in_port_range(sock.dport),
        op::SPORT_PRIV => sock.sport < 1024,
        op::NOT_SPORT_PRIV => sock.sport >= 1024,
        op::DPORT_PRIV => sock.dport < 1024,
        op::NOT_DPORT_PRIV => sock.dport >= 1024,
        op::FAMILY => any_value(filter, |v| v == sock.family as u64),
        op::PROTOCOL => any_value(filter, |v| v == sock.protocol as u64),
        _ => false,
    }
}

#[inline(always)]
fn addr_lookup(at: &FilterAt, addr: &[u8; 16]) -> bool {
    let key = Key::new(
        STR_TRIE_HEADER_BITS + 128,
        AddrTrieData {
            hook_slot: at.hook_slot,
            selector: at.selector,
            filter: at.filter,
            _pad: [0; 2],
            addr: *addr,
        },
    );
    ADDR_TRIE.get(&key).is_some()
}

/// A SubString search: each (value, start position) pair is one window
/// compared with the value, eight bytes at a time.
#[repr(C)]
struct Search {
    key: SubstrKey,
    arg: u64,
    len: u64,
    fold: u64,
}

/// Does argument `at.arg` (`len` bytes) contain one of the filter's
/// SubString values? One loop over every value and start position, so the
/// verifier checks the window comparison once.
#[inline(always)]
fn contains(at: &FilterAt, filter: &ArgFilter, len: u64) -> bool {
    let n = (filter.n_values as u32).min(MAX_VALUES as u32);
    let mut search = Search {
        key: SubstrKey {
            hook_slot: at.hook_slot,
            selector: at.selector,
            filter: at.filter,
            index: 0,
            _pad: 0,
        },
        arg: at.arg as u64,
        len: len.min(STR_LEN as u64 - 1),
        fold: (filter.op == op::SUBSTRING_IGN_CASE) as u64,
    };
    let Some(state) = loop_state() else {
        return false;
    };
    state.found = 0;
    unsafe {
        bpf_loop(
            n * STR_LEN as u32,
            substr_step as *mut c_void,
            (&mut search as *mut Search).cast(),
            0,
        )
    };
    loop_state().is_some_and(|state| state.found != 0)
}

/// ASCII upper case to lower case in each byte of `w`.
#[inline(always)]
fn fold_case(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    let ge_a = low7 + ONES * (0x80 - b'A' as u64);
    let gt_z = low7 + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// bpf_loop callback: does value `index / STR_LEN` start at `index % STR_LEN`?
#[inline(never)]
extern "C" fn substr_step(index: u64, ctx: *mut c_void) -> i64 {
    let search = unsafe { &*(ctx as *const Search) };
    let arg = search.arg as usize;
    let start = index as usize & (STR_LEN - 1);
    let key = SubstrKey {
        index: (index >> STR_LEN.trailing_zeros()) as u8,
        ..search.key
    };
    let (Some(buf), Some(value)) = (EVENT_BUF.get_ptr_mut(0), unsafe { SUBSTRINGS.get(&key) })
    else {
        return 1;
    };
    if arg >= MAX_ARGS {
        return 1;
    }
    // Past the last start for this value: on to the next value's turn.
    if start as u64 + value.len as u64 > search.len {
        return 0;
    }
    let Some(window) = WINDOW.get_ptr_mut(0) else {
        return 1;
    };
    let window = unsafe { &mut *window };
    let src = unsafe { (*buf).data[arg].as_ptr().add(start) };
    if unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            window.as_mut_ptr().cast(),
            SUBSTR_LEN as u32,
            src.cast(),
        )
    } != 0
    {
        return 0;
    }
    if search.fold != 0 {
        crate::unrolled!([0, 1, 2, 3, 4, 5, 6, 7], |i| window[i] =
            fold_case(window[i]));
    }
    // Branch free: one verifier path whatever the bytes.
    let mut diff = 0u64;
    crate::unrolled!([0, 1, 2, 3, 4, 5, 6, 7], |i| diff |=
        (window[i] & value.masks[i]) ^ value.words[i]);
    if diff == 0 {
        if let Some(state) = loop_state() {
            state.found = 1;
        }
        return 1;
    }
    0
}

const _: () = assert!(MAX_VALUES == 4 && SUBSTR_LEN == 64);
