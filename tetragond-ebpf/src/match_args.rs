//! matchArgs operators on argument data: strings and paths against the
//! `STR_TRIE` LPM trie, socket addresses against `ADDR_TRIE`, ports,
//! families and protocols against the filter's inline values.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_loop, maps::lpm_trie::Key};
use tetragond_ebpf::{
    op, AddrTrieData, ArgFilter, SockInfo, MAX_ARGS, MAX_VALUES, STR_LEN, STR_MATCH_LEN,
    STR_TRIE_HEADER_BITS,
};

use crate::{any_value, ADDR_TRIE, EVENT_BUF, PATH_BUF, STR_KEY, STR_TRIE};

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
        op::STR_EQUAL..=op::NOT_POSTFIX => {
            let found = str_lookup(at, filter.op, slot, value);
            let negated = matches!(filter.op, op::STR_NOT_EQUAL | op::NOT_PREFIX | op::NOT_POSTFIX);
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
        let mut rev = Reverse { arg: at.arg as u64, len };
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
        if unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf(src.as_ptr(), &mut key.data.bytes) }
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

const _: () = assert!(MAX_VALUES == 4);
