//! matchArgs operators on argument data: strings and paths against the
//! `STR_TRIE` LPM trie, socket addresses against `ADDR_TRIE`, ports,
//! families and protocols against the filter's inline values.

use aya_ebpf::maps::lpm_trie::Key;
use tetragond_ebpf::{
    op, AddrTrieData, ArgFilter, SockInfo, SubstrKey, FILE_TYPE_BITS, FILE_TYPE_SHIFT, MAX_ARGS,
    MAX_VALUES, PATH_CUT, STR_LEN, STR_MATCH_LEN, STR_TRIE_HEADER_BITS, SUBSTR_LEN,
};

use crate::scratch::scratch;
use crate::{
    any_value, loop_state, ADDR_TRIE, EVENT_BUF, EXE_BUF, STR_KEY, STR_TRIE, SUBSTRINGS, WINDOW,
};

/// `FilterAt::arg` of a string in `EXE_BUF` rather than an argument slot
/// (the executable's path for matchBinaries).
pub const EXE_BUF_SOURCE: usize = MAX_ARGS;

/// Where the filter's argument is: hook slot, selector, filter, argument.
pub struct FilterAt {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub arg: usize,
}

/// Does a data operator (`op >= STR_EQUAL`) hold for the argument's data?
/// `value` is the argument's value (a string's length; a path's may carry
/// `PATH_CUT`). A string operator on a path whose bytes it cannot all see
/// (cut, or longer than a slot for SubString) holds, whichever its sense:
/// fail closed.
#[inline(always)]
pub fn data_filter_matches(at: &FilterAt, filter: &ArgFilter, value: u64) -> bool {
    let Some(slot) = scratch(&EVENT_BUF).and_then(|buf| crate::at(unsafe { &(*buf).data }, at.arg))
    else {
        return false;
    };
    let slot = slot.as_ptr();
    let file_type = (value & FILE_TYPE_BITS) >> FILE_TYPE_SHIFT;
    let value = value & !FILE_TYPE_BITS;
    let cut = value & PATH_CUT != 0;
    match filter.op {
        // An unknown type (0) is none of the values: NotFileType holds.
        op::FILE_TYPE | op::NOT_FILE_TYPE => {
            let n = usize::from(filter.n_values);
            let found = filter
                .values
                .iter()
                .enumerate()
                .any(|(i, &v)| i < n && v == file_type);
            found == (filter.op == op::FILE_TYPE)
        }
        op::SUBSTRING | op::SUBSTRING_IGN_CASE => {
            cut || value >= STR_LEN as u64 || contains(at, filter, value)
        }
        op::STR_EQUAL..=op::NOT_POSTFIX if cut => true,
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
/// `EXE_BUF_SOURCE`) up in `STR_TRIE` for this filter. A path longer than
/// its slot is matched on its first bytes, or on its last (`path_tails`)
/// for Postfix.
#[inline(always)]
pub fn str_lookup(at: &FilterAt, code: u8, slot: *const u8, len: u64) -> bool {
    let Some(key) = scratch(&STR_KEY) else {
        return false;
    };
    let key = unsafe { &mut *key };
    key.data.hook_slot = at.hook_slot;
    key.data.selector = at.selector;
    key.data.filter = at.filter;
    key.data._pad = [0; 2];
    let from_tail = (len >= STR_LEN as u64 && at.arg < MAX_ARGS) as u64;
    let len = len.min(STR_LEN as u64 - 1);
    let bytes = match code {
        // Equal entries include the NUL, so only the whole string matches.
        op::STR_EQUAL | op::STR_NOT_EQUAL => len + 1,
        _ => len,
    }
    .min(STR_MATCH_LEN as u64);
    if matches!(code, op::POSTFIX | op::NOT_POSTFIX) {
        crate::repeat!(
            bytes,
            STR_MATCH_LEN,
            reverse_step(at.arg as u64, len, from_tail)
        );
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

/// Loop step: `key.bytes[index] = source[len - 1 - index]`, the source
/// being argument `arg`'s data, its path tail (`from_tail`), or `EXE_BUF`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn reverse_step(index: u64, arg: u64, len: u64, from_tail: u64) -> i64 {
    let (Some(buf), Some(key)) = (scratch(&EVENT_BUF), scratch(&STR_KEY)) else {
        return 1;
    };
    let arg = arg as usize;
    if arg > EXE_BUF_SOURCE || index >= len || index as usize >= STR_MATCH_LEN {
        return 1;
    }
    let from = (len - 1 - index) as usize & (STR_LEN - 1);
    // The slot test first: 5.10's verifier learns no bound from `!=`.
    let byte = if let Some(tail) =
        crate::at(unsafe { &(*buf).path_tails }, arg).filter(|_| from_tail != 0)
    {
        tail[from]
    } else if let Some(data) = crate::at(unsafe { &(*buf).data }, arg) {
        data[from]
    } else {
        match scratch(&EXE_BUF).map(|p| unsafe { &*p }) {
            Some(path) => path[from],
            None => return 1,
        }
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
        op::STATE => any_value(filter, |v| v == sock.state as u64),
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

/// Does argument `at.arg` (`len` bytes) contain one of the filter's
/// SubString values? One loop over every value and start position, so the
/// verifier checks the window comparison once.
#[inline(always)]
fn contains(at: &FilterAt, filter: &ArgFilter, len: u64) -> bool {
    let n = (filter.n_values as u32).min(MAX_VALUES as u32);
    let Some(state) = loop_state() else {
        return false;
    };
    state.found = 0;
    let filter_at = substr_filter(at.hook_slot, at.selector, at.filter);
    let fold = (filter.op == op::SUBSTRING_IGN_CASE) as u64;
    crate::repeat!(
        n * STR_LEN as u32,
        MAX_VALUES * STR_LEN,
        substr_step(filter_at, at.arg as u64, len.min(STR_LEN as u64 - 1), fold)
    );
    loop_state().is_some_and(|state| state.found != 0)
}

/// `SubstrKey`'s hook slot, selector and filter in one scalar (a loop
/// step takes scalars only).
#[inline(always)]
fn substr_filter(hook_slot: u32, selector: u8, filter: u8) -> u64 {
    u64::from(hook_slot) | u64::from(selector) << 32 | u64::from(filter) << 40
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

/// Loop step of a SubString search: does value `index / STR_LEN` of the
/// filter (`substr_filter`) occur in argument `arg` (`len` bytes) at
/// `index % STR_LEN`? Each (value, start) pair is one window compared with
/// the value eight bytes at a time; `fold` compares ignoring ASCII case.
#[no_mangle]
#[inline(never)]
pub extern "C" fn substr_step(index: u64, filter_at: u64, arg: u64, len: u64, fold: u64) -> i64 {
    let arg = arg as usize;
    let start = index as usize & (STR_LEN - 1);
    let key = SubstrKey {
        hook_slot: filter_at as u32,
        selector: (filter_at >> 32) as u8,
        filter: (filter_at >> 40) as u8,
        index: (index >> STR_LEN.trailing_zeros()) as u8,
        _pad: 0,
    };
    let (Some(data), Some(value)) = (
        scratch(&EVENT_BUF).and_then(|buf| crate::at(unsafe { &(*buf).data }, arg)),
        unsafe { SUBSTRINGS.get(&key) },
    ) else {
        return 1;
    };
    // Past the last start for this value: on to the next value's turn.
    if start as u64 + value.len as u64 > len {
        return 0;
    }
    let Some(window) = scratch(&WINDOW) else {
        return 1;
    };
    let window = unsafe { &mut *window };
    let src = unsafe { data.as_ptr().add(start) };
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
    if fold != 0 {
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
