//! Posted events: read from the kernel's ring buffer, written as JSON lines
//! in Tetragon's export shape (plus `mode` and `enforced`, so a monitor-mode
//! event says its action was not carried out). Lines are written by hand
//! (see `json`), field by field in Tetragon's order, with no value tree in
//! between: this is the per-event cost of the daemon.

use std::sync::Arc;

use tetragond_ebpf::{
    action, record, DataRecord, Event, ExecRecord, ExitRecord, ImaRecord, DATA_HEADER_LEN,
    IMA_HASH_MAX, MODE_MONITOR,
};

use crate::{
    clock::Clock,
    compile::{HookKind, HookMeta, ReturnHalf},
    event_args::{self, push_arg, slot, write_arg},
    json::Json,
    kernel_info::kallsyms::KernelSymbols,
    process::{
        binary::BinaryProperties,
        user_symbols::{UserFrame, UserSymbols},
        Process,
    },
};

/// A record from the kernel's ring buffer.
#[allow(
    clippy::large_enum_variant,
    reason = "policy events are the hot path: kept inline, not boxed per event"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// The event and its payload: its arguments' data (`Event::data_len`
    /// bytes), then its kernel and user stacks (see [`split_payload`]).
    Policy(Event, &'a [u8]),
    /// Boxed: with its argv it is several times the size of the others.
    Exec(Box<ExecRecord>),
    Exit(ExitRecord),
    /// A piece of a `maxData` buffer.
    Data(Piece<'a>),
    /// The IMA hash the events its thread just posted wait for.
    Ima(ImaHash),
}

/// The IMA hash of an LSM hook's file, as the kernel's companion program
/// took it (`ImaRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImaHash {
    /// The thread whose events wait for it.
    pub tid: u32,
    /// The kernel's `enum hash_algo`, or a negative errno.
    pub algo: i32,
    pub digest: [u8; IMA_HASH_MAX],
}

impl ImaHash {
    /// Tetragon's `ima_hash`: `ALGO:HEX`, for the algorithms it names;
    /// None for an error (no hash) or another algorithm, which Tetragon
    /// leaves out too.
    pub fn text(&self) -> Option<String> {
        let (name, len) = match self.algo {
            1 => ("md5", 16),
            2 => ("sha1", 20),
            4 => ("sha256", 32),
            6 => ("sha512", 64),
            13 => ("wp512", 64),
            17 => ("sm3", 32),
            _ => return None,
        };
        let hex: String = self.digest[..len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(format!("{name}:{hex}"))
    }
}

/// The buffer of a hook's `maxData` argument, put together from its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeArg<'a> {
    /// The argument's index among the hook's.
    pub arg: usize,
    pub bytes: &'a [u8],
}

/// A piece of the buffer of a hook's `maxData` argument, as the kernel
/// posted it (a `DataRecord`), just before its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The event's thread and time.
    pub tid: u32,
    pub ktime_ns: u64,
    /// The argument's index among the hook's.
    pub arg: u16,
    /// Where `bytes` go in the buffer.
    pub offset: u32,
    pub bytes: &'a [u8],
}

/// Decodes a ring buffer record; None when it is unknown or too short.
pub fn decode(bytes: &[u8]) -> Option<Record<'_>> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        record::POLICY_EVENT => {
            let ev: Event = read_pod(bytes)?;
            let header = std::mem::size_of::<Event>();
            let len = ev.data_len as usize
                + usize::from(ev.kernel_stack_len)
                + usize::from(ev.user_stack_len);
            let payload = bytes.get(header..header + len)?;
            Some(Record::Policy(ev, payload))
        }
        record::EXEC => read_pod(bytes).map(|r| Record::Exec(Box::new(r))),
        record::EXIT => read_pod(bytes).map(Record::Exit),
        record::DATA => decode_piece(bytes).map(Record::Data),
        record::IMA_HASH => read_pod::<ImaRecord>(bytes).map(|r| {
            Record::Ima(ImaHash {
                tid: r.tid,
                algo: r.algo,
                digest: r.hash,
            })
        }),
        _ => None,
    }
}

/// A `DataRecord`, of which only the used bytes were posted.
fn decode_piece(bytes: &[u8]) -> Option<Piece<'_>> {
    use std::mem::offset_of;
    let field = |at: usize, n: usize| bytes.get(at..at + n);
    let u16_at = |at| Some(u16::from_ne_bytes(field(at, 2)?.try_into().ok()?));
    let u32_at = |at| Some(u32::from_ne_bytes(field(at, 4)?.try_into().ok()?));
    let u64_at = |at| Some(u64::from_ne_bytes(field(at, 8)?.try_into().ok()?));
    let len = usize::from(u16_at(offset_of!(DataRecord, len))?);
    Some(Piece {
        tid: u32_at(offset_of!(DataRecord, tid))?,
        ktime_ns: u64_at(offset_of!(DataRecord, ktime_ns))?,
        arg: u16_at(offset_of!(DataRecord, arg))?,
        offset: u32_at(offset_of!(DataRecord, offset))?,
        bytes: field(DATA_HEADER_LEN, len)?,
    })
}

/// `T` must be one of the repr(C) plain-data records of tetragond-ebpf.
fn read_pod<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is plain data and the length was checked; read_unaligned
    // makes no assumption about the ring buffer's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The event's `action`: its enforcement action if it had one, else its
/// selector's last TrackSock or UntrackSock, else the last action the
/// daemon performs for its selector (GetUrl, DnsLookup; Tetragon names the
/// last action taken), else Post.
pub fn action_name(ev: &Event, meta: &HookMeta) -> &'static str {
    match ev.action {
        action::SIGKILL => "KPROBE_ACTION_SIGKILL",
        action::SIGNAL => "KPROBE_ACTION_SIGNAL",
        action::OVERRIDE => "KPROBE_ACTION_OVERRIDE",
        action::SET => "KPROBE_ACTION_SET",
        action::TRACK_SOCK => "KPROBE_ACTION_TRACKSOCK",
        action::UNTRACK_SOCK => "KPROBE_ACTION_UNTRACKSOCK",
        _ => meta
            .daemon_actions_of(ev.selector)
            .last()
            .map_or("KPROBE_ACTION_POST", |a| a.event_action()),
    }
}

/// The exported event kinds: the top-level key of a line.
pub mod kind {
    pub const KPROBE: &str = "process_kprobe";
    pub const TRACEPOINT: &str = "process_tracepoint";
    pub const LSM: &str = "process_lsm";
    pub const UPROBE: &str = "process_uprobe";
    pub const USDT: &str = "process_usdt";
    pub const LOADER: &str = "process_loader";
    pub const EXEC: &str = "process_exec";
    pub const EXIT: &str = "process_exit";
    pub const RATE_LIMIT_INFO: &str = "rate_limit_info";
}

/// The event key for a hook.
pub fn hook_kind(meta: &HookMeta) -> &'static str {
    match meta.kind {
        HookKind::Tracepoint { .. } => kind::TRACEPOINT,
        HookKind::Kprobe { .. } => kind::KPROBE,
        HookKind::Lsm { .. } => kind::LSM,
        HookKind::Uprobe { .. } => kind::UPROBE,
        HookKind::Usdt { .. } => kind::USDT,
        HookKind::Loader => kind::LOADER,
    }
}

/// An exported line and what the exporter needs to know about it without
/// parsing it again (rate limits, counters). For the rarer lines (process
/// events, reports); policy events are rendered into a reused buffer
/// instead ([`write_policy_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub kind: &'static str,
    /// Empty for process and rate-limit events.
    pub policy_name: String,
    pub line: Vec<u8>,
}

/// `{"<kind>":{`: every line is one event keyed by its kind.
fn open_line(j: &mut Json, kind: &str) {
    j.open(b'{');
    j.key(kind);
    j.open(b'{');
}

/// An event's `time`.
enum Time<'a> {
    /// Kernel clock nanoseconds.
    Kernel(&'a Clock, u64),
    Text(&'a str),
}

/// `},"node_name":...,"time":...}`.
fn close_line(j: &mut Json, node_name: &str, time: Time) {
    j.close(b'}');
    j.key("node_name");
    j.str(node_name);
    j.key("time");
    match time {
        Time::Kernel(clock, ktime_ns) => {
            // Digits and punctuation: nothing to escape.
            let out = j.buf();
            out.push(b'"');
            clock.write_rfc3339(out, ktime_ns);
            out.push(b'"');
        }
        Time::Text(text) => j.str(text),
    }
    j.close(b'}');
}

/// A process as Tetragon exports it. `pid`, `uid`, `tid`, `auid` and
/// `in_init_tree` are wrapper messages in Tetragon's protobuf, so they
/// appear even when zero or false; every other empty field is left out.
/// All but `tid` (which is the event's) is rendered once per process and
/// kept with it.
fn process_json(j: &mut Json, p: &Process, tid: u32) {
    process_json_with(j, p, tid, None);
}

/// [`process_json`], with an exec's `binary_properties` (Tetragon writes
/// them in the process of its `process_exec`).
fn process_json_with(j: &mut Json, p: &Process, tid: u32, binary: Option<&BinaryProperties>) {
    j.raw(p.json.get_or_init(|| render_process_fields(p)));
    j.key("tid");
    j.u64(u64::from(tid));
    if let Some(b) = binary {
        binary_properties_json(j, b);
    }
    j.key("in_init_tree");
    j.bool(p.in_init_tree);
    j.close(b'}');
}

/// `{"exec_id":...,"parent_exec_id":...`: the process object up to `tid`.
fn render_process_fields(p: &Process) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut j = Json::new(&mut out);
    j.open(b'{');
    let text = |j: &mut Json, key: &str, value: &str| {
        if !value.is_empty() {
            j.key(key);
            j.str(value);
        }
    };
    text(&mut j, "exec_id", &p.exec_id);
    j.key("pid");
    j.u64(u64::from(p.pid));
    j.key("uid");
    j.u64(u64::from(p.uid));
    text(&mut j, "cwd", &p.cwd);
    text(&mut j, "binary", &p.binary);
    text(&mut j, "arguments", &p.arguments);
    text(&mut j, "flags", &p.flags);
    text(&mut j, "start_time", &p.start_time);
    j.key("auid");
    j.u64(u64::from(p.auid));
    text(&mut j, "parent_exec_id", &p.parent_exec_id);
    if let Some(caps) = &p.caps {
        j.key("cap");
        event_args::caps(&mut j, caps);
    }
    if let Some(ns) = &p.ns {
        j.key("ns");
        event_args::namespaces(&mut j, ns);
    }
    if let Some(cred) = &p.cred {
        j.key("process_credentials");
        event_args::cred(&mut j, cred);
    }
    out
}

/// `"process":{...}` and, when known, `"parent":{...}` (whose `tid` is its pid).
/// `"binary_properties":{...}`, keys in order as the other objects:
/// `file.inode` (`links` wrapped: a number; `number` a 64-bit integer: a
/// string), `privileges_changed` (enum names), `setgid` and `setuid`
/// (wrapped integers: numbers).
fn binary_properties_json(j: &mut Json, b: &BinaryProperties) {
    j.key("binary_properties");
    j.open(b'{');
    if let Some((number, links)) = b.unlinked {
        j.key("file");
        j.open(b'{');
        j.key("inode");
        j.open(b'{');
        j.key("links");
        j.u64(u64::from(links));
        j.key("number");
        j.u64_string(number);
        j.close(b'}');
        j.close(b'}');
    }
    if !b.privileges_changed.is_empty() {
        j.key("privileges_changed");
        j.open(b'[');
        for reason in &b.privileges_changed {
            j.element();
            j.str(reason);
        }
        j.close(b']');
    }
    for (key, id) in [("setgid", b.setgid), ("setuid", b.setuid)] {
        if let Some(id) = id {
            j.key(key);
            j.u64(u64::from(id));
        }
    }
    j.close(b'}');
}

fn processes(j: &mut Json, process: &Process, tid: u32, parent: Option<&Process>) {
    processes_with(j, process, tid, parent, None);
}

fn processes_with(
    j: &mut Json,
    process: &Process,
    tid: u32,
    parent: Option<&Process>,
    binary: Option<&BinaryProperties>,
) {
    j.key("process");
    process_json_with(j, process, tid, binary);
    if let Some(p) = parent {
        j.key("parent");
        process_json(j, p, p.pid);
    }
}

/// `"ancestors":[...]`, nearest first, each rendered as `parent` is (its
/// `tid` is its pid); left out when empty, as protojson leaves out an
/// empty repeated field.
fn ancestors_json(j: &mut Json, ancestors: &[Arc<Process>]) {
    if ancestors.is_empty() {
        return;
    }
    j.key("ancestors");
    j.open(b'[');
    for a in ancestors {
        j.element();
        process_json(j, a, a.pid);
    }
    j.close(b']');
}

/// Where the hook is: `function_name`, `subsys` and `event`, `path` and
/// `symbol`, or `path`, `provider` and `name`.
fn hook_place(j: &mut Json, kind: &HookKind) {
    let fields: [(&str, &str); 3] = match kind {
        HookKind::Tracepoint { subsystem, event } => {
            [("subsys", subsystem), ("event", event), ("", "")]
        }
        HookKind::Uprobe { path, symbol } => [("path", path), ("symbol", symbol), ("", "")],
        HookKind::Usdt {
            path,
            provider,
            name,
        } => [("path", path), ("provider", provider), ("name", name)],
        HookKind::Kprobe { function } | HookKind::Lsm { function } => {
            [("function_name", function), ("", ""), ("", "")]
        }
        // Written by `loader_event`, not as a hook event.
        HookKind::Loader => [("", ""); 3],
    };
    for (key, value) in fields.into_iter().filter(|(key, _)| !key.is_empty()) {
        j.key(key);
        j.str(value);
    }
}

/// The exit half of a return hook's call (see [`ReturnHalf`]): its event
/// completes the entry half's.
#[derive(Debug, Clone, Copy)]
pub struct ReturnPart<'a> {
    pub event: &'a Event,
    pub payload: &'a [u8],
    pub meta: &'a HookMeta,
}

/// A call's `args`, as the entry half read them (the `returnCopy` one as
/// the exit half read it; the `maxData` one whole, from either half), and
/// its `return`.
fn call_args(
    j: &mut Json,
    ev: &Event,
    data: &[u8],
    meta: &HookMeta,
    ret: &ReturnPart<'_>,
    whole: Option<WholeArg>,
) {
    let copy = match meta.return_half {
        ReturnHalf::Entry { copy } => copy,
        _ => None,
    };
    let (ret_data, _, _) = split_payload(ret.event, ret.payload);
    let n = arg_count(ev, meta);
    if n > 0 {
        j.key("args");
        j.open(b'[');
        for (i, (ty, label)) in meta.args.iter().take(n).enumerate() {
            let (raw, slot) = match whole {
                Some(w) if w.arg == i => (w.bytes.len() as u64, Some(w.bytes)),
                _ if copy == Some(i) => (ret.event.args[1], slot(ret_data, 1)),
                _ => (ev.args[i], slot(data, i)),
            };
            push_arg(j, ty, raw, slot, label.as_deref());
        }
        j.close(b']');
    }
    if let Some((ty, label)) = ret.meta.args.first() {
        j.key("return");
        write_arg(
            j,
            ty,
            ret.event.args[0],
            slot(ret_data, 0),
            label.as_deref(),
        );
    }
}

/// How many of the event's args are the hook's args: the rest, from
/// `data_from`, are its data values.
fn arg_count(ev: &Event, meta: &HookMeta) -> usize {
    let n = meta.args.len().min(ev.args.len());
    meta.data_from.map_or(n, |from| from.min(n))
}

/// A kprobe's `data` values (see `compile/data.rs`), left out when it has
/// none.
fn data_values(j: &mut Json, ev: &Event, data: &[u8], meta: &HookMeta) {
    let n = meta.args.len().min(ev.args.len());
    let Some(from) = meta.data_from.filter(|&from| from < n) else {
        return;
    };
    j.key("data");
    j.open(b'[');
    for i in from..n {
        let (ty, label) = &meta.args[i];
        push_arg(j, ty, ev.args[i], slot(data, i), label.as_deref());
    }
    j.close(b']');
}

/// `args` (left out when empty) and `return` (return probes: the arg at
/// `return_position`, taken out of `args`); the `maxData` argument's
/// buffer whole when it came.
fn hook_args(j: &mut Json, ev: &Event, data: &[u8], meta: &HookMeta, whole: Option<WholeArg>) {
    let n = arg_count(ev, meta);
    let ret = meta.return_position.filter(|&i| i < n);
    let arg = |i: usize| {
        let (ty, label) = &meta.args[i];
        let (raw, bytes) = match whole {
            Some(w) if w.arg == i => (w.bytes.len() as u64, Some(w.bytes)),
            _ => (ev.args[i], slot(data, i)),
        };
        (ty, raw, bytes, label.as_deref())
    };
    if n > usize::from(ret.is_some()) {
        j.key("args");
        j.open(b'[');
        for i in (0..n).filter(|&i| Some(i) != ret) {
            let (ty, raw, bytes, label) = arg(i);
            push_arg(j, ty, raw, bytes, label);
        }
        j.close(b']');
    }
    if let Some(i) = ret {
        j.key("return");
        let (ty, raw, bytes, label) = arg(i);
        write_arg(j, ty, raw, bytes, label);
    }
}

/// The policy's fields: `policy_name`, `policy_namespace`, a return
/// hook's `return_action`, `message` and `tags` (all but the first left
/// out when empty).
fn policy_fields(j: &mut Json, meta: &HookMeta, ret: Option<&ReturnPart<'_>>) {
    j.key("policy_name");
    j.str(&meta.policy_name);
    if !meta.namespace.is_empty() {
        j.key("policy_namespace");
        j.str(&meta.namespace);
    }
    if let Some(ret) = ret {
        j.key("return_action");
        j.str(action_name(ret.event, ret.meta));
    }
    if let Some(message) = &meta.message {
        j.key("message");
        j.str(message);
    }
    if !meta.tags.is_empty() {
        j.key("tags");
        j.open(b'[');
        for tag in &meta.tags {
            j.element();
            j.str(tag);
        }
        j.close(b']');
    }
}

/// Beyond Tetragon: the mode at the time of the event.
fn mode(ev: &Event, meta: &HookMeta) -> &'static str {
    match (meta.monitor_only, ev.mode as u32) {
        (true, _) => "monitor_only",
        (false, MODE_MONITOR) => "monitor",
        (false, _) => "enforce",
    }
}

/// One posted policy event, appended to `out` as a JSON line (without its
/// newline). Returns the event's kind.
#[allow(
    clippy::too_many_arguments,
    reason = "the event, its hook and its process: each a separate source"
)]
pub fn write_policy_event(
    out: &mut Vec<u8>,
    ev: &Event,
    payload: &[u8],
    meta: &HookMeta,
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    clock: &Clock,
    node_name: &str,
    stacks: &StackFrames,
    ret: Option<ReturnPart<'_>>,
    whole: Option<WholeArg<'_>>,
    ima_hash: Option<&str>,
) -> &'static str {
    let kind = hook_kind(meta);
    let (data, _, _) = split_payload(ev, payload);
    let mut j = Json::new(out);
    open_line(&mut j, kind);
    processes(&mut j, process, ev.tid, parent);
    hook_place(&mut j, &meta.kind);
    match &ret {
        Some(ret) => call_args(&mut j, ev, data, meta, ret, whole),
        None => hook_args(&mut j, ev, data, meta, whole),
    }
    j.key("action");
    j.str(action_name(ev, meta));
    stack_trace(
        &mut j,
        "kernel_stack_trace",
        stacks.kernel.iter().map(Frame::from),
    );
    policy_fields(&mut j, meta, ret.as_ref());
    stack_trace(
        &mut j,
        "user_stack_trace",
        stacks.user.iter().map(Frame::from),
    );
    ancestors_json(&mut j, ancestors);
    // Tetragon's last field of an LSM event.
    if let Some(hash) = ima_hash {
        j.key("ima_hash");
        j.str(hash);
    }
    // Tetragon's last field of a kprobe event.
    data_values(&mut j, ev, data, meta);
    j.key("mode");
    j.str(mode(ev, meta));
    // Written even when false: that is the point of it. A call's is
    // either half's.
    j.key("enforced");
    j.bool(ev.enforced != 0 || ret.is_some_and(|r| r.event.enforced != 0));
    if ev.repeats != 0 {
        j.key("repeats");
        j.u64(u64::from(ev.repeats));
    }
    close_line(&mut j, node_name, Time::Kernel(clock, ev.ktime_ns));
    kind
}

/// A policy event's payload: its argument data, its kernel stack frames
/// and its user stack frames (each as many bytes as the event says, cut
/// short by a short payload).
fn split_payload<'a>(ev: &Event, payload: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8]) {
    let (data, rest) = payload.split_at((ev.data_len as usize).min(payload.len()));
    let (kernel, rest) = rest.split_at(usize::from(ev.kernel_stack_len).min(rest.len()));
    let user = &rest[..usize::from(ev.user_stack_len).min(rest.len())];
    (data, kernel, user)
}

/// The addresses of stack frame bytes, innermost first, zeros left out.
fn frame_addresses(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .as_chunks::<8>()
        .0
        .iter()
        .map(|b| u64::from_ne_bytes(*b))
        .filter(|addr| *addr != 0)
}

/// An event's stack frames, named: kernel frames by function and offset,
/// user frames by file, offset and function.
#[derive(Debug, Default)]
pub struct StackFrames<'a> {
    pub kernel: Vec<(&'a str, u64)>,
    pub user: Vec<UserFrame>,
}

impl<'a> StackFrames<'a> {
    /// The frames of `ev`'s stacks in `payload`: kernel frames named from
    /// `kernel` (none without it), user frames from the maps and files of
    /// the event's process. Frames that cannot be named are left out, as
    /// Tetragon does.
    pub fn of(
        ev: &Event,
        payload: &[u8],
        kernel: Option<&'a KernelSymbols>,
        user: &mut UserSymbols,
    ) -> Self {
        let (_, kernel_bytes, user_bytes) = split_payload(ev, payload);
        let kernel = kernel.map_or_else(Vec::new, |symbols| {
            frame_addresses(kernel_bytes)
                .filter_map(|addr| symbols.lookup(addr))
                .collect()
        });
        let addresses: Vec<u64> = frame_addresses(user_bytes).collect();
        let user = if addresses.is_empty() {
            vec![]
        } else {
            user.frames(ev.tgid, &addresses)
        };
        StackFrames { kernel, user }
    }
}

/// A `StackTraceEntry`: its fields as Tetragon writes them, empty ones
/// left out.
struct Frame<'a> {
    offset: u64,
    symbol: &'a str,
    module: &'a str,
}

impl<'a> From<&'a (&'a str, u64)> for Frame<'a> {
    fn from((symbol, offset): &'a (&'a str, u64)) -> Self {
        Frame {
            offset: *offset,
            symbol,
            module: "",
        }
    }
}

impl<'a> From<&'a UserFrame> for Frame<'a> {
    fn from(f: &'a UserFrame) -> Self {
        Frame {
            offset: f.offset,
            symbol: &f.symbol,
            module: &f.module,
        }
    }
}

/// `kernel_stack_trace` or `user_stack_trace`, innermost frame first;
/// left out when there is no frame.
fn stack_trace<'a>(j: &mut Json, key: &str, frames: impl ExactSizeIterator<Item = Frame<'a>>) {
    if frames.len() == 0 {
        return;
    }
    j.key(key);
    j.open(b'[');
    for f in frames {
        j.element();
        j.open(b'{');
        if f.offset != 0 {
            j.key("offset");
            j.u64_string(f.offset);
        }
        if !f.symbol.is_empty() {
            j.key("symbol");
            j.str(f.symbol);
        }
        if !f.module.is_empty() {
            j.key("module");
            j.str(f.module);
        }
        j.close(b'}');
    }
    j.close(b']');
}

/// A line of a process or report event.
fn exported(kind: &'static str, line: Vec<u8>) -> Exported {
    Exported {
        kind,
        policy_name: String::new(),
        line,
    }
}

/// A `process_exec`, dated at the exec.
pub fn exec_event(
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    node_name: &str,
) -> Exported {
    let mut out = Vec::with_capacity(1024);
    let mut j = Json::new(&mut out);
    open_line(&mut j, kind::EXEC);
    let binary = process.binary_properties.as_ref();
    processes_with(&mut j, process, process.pid, parent, binary);
    ancestors_json(&mut j, ancestors);
    close_line(&mut j, node_name, Time::Text(&process.start_time));
    exported(kind::EXEC, out)
}

/// A `process_loader`: the process that mapped an executable file, the
/// file's `path` and `buildid` (base64; left out when the file has none),
/// and, our addition, the `policy_name` that asked for it.
pub fn loader_event(
    loaded: &LoadedFile<'_>,
    process: &Process,
    clock: &Clock,
    node_name: &str,
) -> Exported {
    let mut out = Vec::with_capacity(512);
    let mut j = Json::new(&mut out);
    open_line(&mut j, kind::LOADER);
    j.key("process");
    process_json(&mut j, process, loaded.tid);
    j.key("path");
    j.str(loaded.path);
    if !loaded.build_id.is_empty() {
        j.key("buildid");
        event_args::base64(&mut j, loaded.build_id);
    }
    j.key("policy_name");
    j.str(loaded.policy_name);
    close_line(&mut j, node_name, Time::Kernel(clock, loaded.ktime_ns));
    Exported {
        kind: kind::LOADER,
        policy_name: loaded.policy_name.to_string(),
        line: out,
    }
}

/// The file a loader hook's event mapped (its first argument), None for
/// an anonymous mapping or a path cut short.
pub fn loaded_path(ev: &Event, payload: &[u8]) -> Option<String> {
    let (data, _, _) = split_payload(ev, payload);
    event_args::whole_path(slot(data, 0), ev.args[0]).map(|p| p.into_owned())
}

/// What a `process_loader` says of the mapping.
pub struct LoadedFile<'a> {
    pub path: &'a str,
    pub build_id: &'a [u8],
    pub policy_name: &'a str,
    pub tid: u32,
    pub ktime_ns: u64,
}

/// A `process_exit`. `wait_status` is the exit status as wait(2) gives it,
/// when it could be read.
pub fn exit_event(
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    wait_status: Option<i32>,
    time: &str,
    node_name: &str,
) -> Exported {
    let (signal, status) = match wait_status {
        Some(w) if w & 0x7f != 0 => (signal_name(w & 0x7f), 0),
        Some(w) => (String::new(), ((w >> 8) & 0xff) as u32),
        None => (String::new(), 0),
    };
    let mut out = Vec::with_capacity(1024);
    let mut j = Json::new(&mut out);
    open_line(&mut j, kind::EXIT);
    processes(&mut j, process, process.pid, parent);
    if !signal.is_empty() {
        j.key("signal");
        j.str(&signal);
    }
    if status != 0 {
        j.key("status");
        j.u64(u64::from(status));
    }
    j.key("time");
    j.str(time);
    ancestors_json(&mut j, ancestors);
    close_line(&mut j, node_name, Time::Text(time));
    exported(kind::EXIT, out)
}

/// Events that were dropped, and why; `policy_name` for a policy's limit.
pub fn rate_limit_info(
    dropped: u64,
    reason: &str,
    policy_name: &str,
    time: &str,
    node_name: &str,
) -> Exported {
    let mut out = Vec::with_capacity(256);
    let mut j = Json::new(&mut out);
    open_line(&mut j, kind::RATE_LIMIT_INFO);
    // uint64: a string, as protojson writes it.
    j.key("number_of_dropped_process_events");
    j.u64_string(dropped);
    // Beyond Tetragon: why (`ring_buffer`, `rate_limit`, ...).
    j.key("reason");
    j.str(reason);
    if !policy_name.is_empty() {
        j.key("policy_name");
        j.str(policy_name);
    }
    close_line(&mut j, node_name, Time::Text(time));
    exported(kind::RATE_LIMIT_INFO, out)
}

/// `SIGKILL` for 9, as Tetragon names exit signals.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("SIG{sig}"), |n| n.to_string())
}

pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub mod calls;
#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tetragond_ebpf::{COMM_LEN, PATH_LEN, STR_LEN};

    /// A policy event's kind and line.
    #[allow(
        clippy::too_many_arguments,
        reason = "write_policy_event's inputs, less the stacks and return"
    )]
    fn policy_event(
        ev: &Event,
        data: &[u8],
        meta: &HookMeta,
        process: &Process,
        parent: Option<&Process>,
        ancestors: &[Arc<Process>],
        clock: &Clock,
        node_name: &str,
    ) -> (&'static str, Vec<u8>) {
        let mut out = b"left alone".to_vec();
        // As decoded: the payload is the argument data, no stack.
        let ev = &Event {
            data_len: data.len() as u32,
            ..*ev
        };
        let kind = write_policy_event(
            &mut out,
            ev,
            data,
            meta,
            process,
            parent,
            ancestors,
            clock,
            node_name,
            &StackFrames::default(),
            None,
            None,
            None,
        );
        assert_eq!(&out[..10], b"left alone", "appended");
        (kind, out.split_off(10))
    }

    fn event() -> Event {
        let mut exe = [0u8; PATH_LEN];
        exe[..8].copy_from_slice(b"/bin/cat");
        let mut comm = [0u8; COMM_LEN];
        comm[..3].copy_from_slice(b"cat");
        Event {
            kind: record::POLICY_EVENT,
            data_len: 0,
            ktime_ns: 5,
            policy_slot: 1,
            hook_slot: 2,
            tgid: 42,
            tid: 43,
            uid: 0,
            gid: 0,
            action: action::SIGKILL,
            enforced: 0,
            mode: MODE_MONITOR as u8,
            selector: 0,
            signal: 9,
            repeats: 0,
            kernel_stack_len: 0,
            user_stack_len: 0,
            pair_slot: 0,
            return_half: 0,
            ima_hash: 0,
            _pad: [0; 2],
            args: [39, 0, 0, 0, 0],
            comm,
            exe,
        }
    }

    /// A return hook's call is one event: the entry's args (the
    /// returnCopy one as the exit read it), its action, the exit's return
    /// value and action.
    #[test]
    fn a_call_is_written_as_one_event_with_its_return() {
        let kind = HookKind::Kprobe {
            function: "sys_read".into(),
        };
        let entry_meta = HookMeta {
            policy_name: "reads".into(),
            namespace: String::new(),
            kind,
            args: vec![
                ("int".into(), None),
                ("char_buf".into(), Some("buf".into())),
            ],
            message: None,
            tags: vec![],
            monitor_only: false,
            return_position: None,
            data_from: None,
            return_half: ReturnHalf::Entry { copy: Some(1) },
            daemon_actions: vec![],
        };
        let exit_meta = HookMeta {
            args: vec![("int".into(), None), ("char_buf".into(), None)],
            return_position: Some(0),
            data_from: None,
            return_half: ReturnHalf::Exit,
            ..entry_meta.clone()
        };
        let entry = Event {
            action: action::POST,
            args: [3, 0x7fff_0000, 0, 0, 0],
            ..event()
        };
        let mut data = vec![0u8; 2 * STR_LEN];
        data[STR_LEN..STR_LEN + 5].copy_from_slice(b"hello");
        let exit = Event {
            action: action::SIGKILL,
            enforced: 1,
            data_len: data.len() as u32,
            args: [5, 5, 0, 0, 0],
            ..event()
        };
        let part = ReturnPart {
            event: &exit,
            payload: &data,
            meta: &exit_meta,
        };
        let mut out = Vec::new();
        let (process, clock) = (Process::default(), Clock::at_boot(0));
        write_policy_event(
            &mut out,
            &entry,
            &[],
            &entry_meta,
            &process,
            None,
            &[],
            &clock,
            "n",
            &StackFrames::default(),
            Some(part),
            None,
            None,
        );
        let line: Value = serde_json::from_slice(&out).expect("JSON");
        let kprobe = &line["process_kprobe"];
        assert_eq!(
            kprobe["args"],
            json!([{"int_arg": 3}, {"bytes_arg": "aGVsbG8=", "label": "buf"}])
        );
        assert_eq!(kprobe["return"], json!({"int_arg": 5}));
        assert_eq!(kprobe["action"], "KPROBE_ACTION_POST");
        assert_eq!(kprobe["return_action"], "KPROBE_ACTION_SIGKILL");
        assert_eq!(kprobe["enforced"], true);
    }

    #[test]
    fn monitor_event_says_not_enforced() {
        let meta = HookMeta {
            policy_name: "deny".into(),
            namespace: String::new(),
            kind: HookKind::Tracepoint {
                subsystem: "raw_syscalls".into(),
                event: "sys_enter".into(),
            },
            args: vec![("syscall64".into(), Some("id".into()))],
            message: None,
            tags: vec![],
            monitor_only: false,
            return_position: None,
            data_from: None,
            return_half: ReturnHalf::None,
            daemon_actions: vec![],
        };
        let process = Process {
            exec_id: "aWQ=".into(),
            pid: 42,
            binary: "/bin/cat".into(),
            auid: u32::MAX,
            ..Process::default()
        };
        let out = policy_event(
            &event(),
            &[],
            &meta,
            &process,
            None,
            &[],
            &Clock::at_boot(0),
            "node",
        );
        assert_eq!(out.0, "process_tracepoint");
        let v: Value = serde_json::from_slice(&out.1).expect("JSON");
        let body = &v["process_tracepoint"];
        assert_eq!(body["action"], "KPROBE_ACTION_SIGKILL");
        assert_eq!(body["enforced"], false);
        assert_eq!(body["mode"], "monitor");
        assert_eq!(body["process"]["binary"], "/bin/cat");
        assert_eq!(
            body["args"][0]["syscall_id"],
            json!({"id": 39, "abi": "x64"})
        );
        assert_eq!(body["args"][0]["label"], "id");
        assert_eq!(v["node_name"], "node");
        // Zero values are left out, except the wrapper integers and `enforced`.
        assert_eq!(body["process"]["uid"], 0);
        assert_eq!(body["process"]["tid"], 43);
        assert_eq!(body["process"]["auid"], u32::MAX);
        assert!(body["process"].get("cwd").is_none());
        assert!(body.get("parent").is_none());
        assert!(body.get("message").is_none());
        assert!(body.get("tags").is_none());
    }

    /// The stacks after the argument data are written as Tetragon writes
    /// them: the kernel's after `action` (function and offset per frame,
    /// innermost first, frames no function covers left out), the user's
    /// after `tags` (file, offset into it, function).
    #[test]
    fn stack_frames_are_named_where_tetragon_writes_them() {
        let meta = HookMeta {
            policy_name: "p".into(),
            namespace: String::new(),
            kind: HookKind::Kprobe {
                function: "sys_truncate".into(),
            },
            args: vec![("int".into(), None)],
            message: None,
            tags: vec!["t".into()],
            monitor_only: false,
            return_position: None,
            data_from: None,
            return_half: ReturnHalf::None,
            daemon_actions: vec![],
        };
        let symbols = KernelSymbols::parse(
            "ffffffff81000000 T do_syscall_64\nffffffff81234560 T vfs_truncate\n",
        );
        // A user frame in this test's own code.
        let here = stack_frames_are_named_where_tetragon_writes_them as *const () as usize as u64;
        let kernel: [u64; 3] = [0xffff_ffff_8123_4575, 0x10, 0xffff_ffff_8100_0000];
        let mut payload = vec![0u8; STR_LEN];
        payload.extend(kernel.iter().flat_map(|f| f.to_ne_bytes()));
        payload.extend(here.to_ne_bytes());
        let ev = Event {
            data_len: STR_LEN as u32,
            kernel_stack_len: 24,
            user_stack_len: 8,
            tgid: std::process::id(),
            ..event()
        };
        let (data, k, u) = split_payload(&ev, &payload);
        assert_eq!((data.len(), k.len(), u.len()), (STR_LEN, 24, 8));
        let mut user = UserSymbols::default();
        let frames = StackFrames::of(&ev, &payload, Some(&symbols), &mut user);
        assert_eq!(
            frames.kernel,
            [("vfs_truncate", 0x15), ("do_syscall_64", 0)]
        );
        assert_eq!(frames.user.len(), 1);
        let mut out = Vec::new();
        let process = Process::default();
        let clock = Clock::at_boot(0);
        write_policy_event(
            &mut out,
            &ev,
            &payload,
            &meta,
            &process,
            None,
            &[],
            &clock,
            "n",
            &frames,
            None,
            None,
            None,
        );
        let line = String::from_utf8(out).expect("UTF-8");
        let expected = r#""action":"KPROBE_ACTION_SIGKILL","kernel_stack_trace":[{"offset":"21","symbol":"vfs_truncate"},{"symbol":"do_syscall_64"}],"policy_name":"p","tags":["t"],"user_stack_trace":[{"offset":""#;
        assert!(line.contains(expected), "{line}");
        let module = std::fs::read_link("/proc/self/exe").expect("exe");
        assert!(
            line.contains(&format!(r#"","module":"{}"}}],"mode""#, module.display())),
            "{line}"
        );
        // Without kallsyms, no kernel frames.
        let frames = StackFrames::of(&ev, &payload, None, &mut user);
        assert!(frames.kernel.is_empty());
    }

    #[test]
    fn kprobe_lsm_uprobe_keys() {
        let mut meta = HookMeta {
            policy_name: "p".into(),
            namespace: String::new(),
            kind: HookKind::Kprobe {
                function: "sys_getpgid".into(),
            },
            args: vec![],
            message: Some("m".into()),
            tags: vec!["t".into()],
            monitor_only: true,
            return_position: None,
            data_from: None,
            return_half: ReturnHalf::None,
            daemon_actions: vec![],
        };
        let p = Process::default();
        let clock = Clock::at_boot(0);
        let v: Value = serde_json::from_slice(
            &policy_event(&event(), &[], &meta, &p, Some(&p), &[], &clock, "n").1,
        )
        .expect("JSON");
        let body = &v["process_kprobe"];
        assert_eq!(body["function_name"], "sys_getpgid");
        assert!(body.get("subsys").is_none());
        assert_eq!(body["mode"], "monitor_only");
        assert_eq!(body["message"], "m");
        assert_eq!(body["tags"][0], "t");
        assert!(body.get("parent").is_some());
        meta.kind = HookKind::Lsm {
            function: "file_open".into(),
        };
        assert_eq!(hook_kind(&meta), "process_lsm");
        meta.kind = HookKind::Uprobe {
            path: "/bin/bash".into(),
            symbol: "sys_getpgid".into(),
        };
        let v: Value = serde_json::from_slice(
            &policy_event(&event(), &[], &meta, &p, None, &[], &clock, "n").1,
        )
        .expect("JSON");
        assert_eq!(v["process_uprobe"]["path"], "/bin/bash");
        assert_eq!(v["process_uprobe"]["symbol"], "sys_getpgid");
    }

    /// `ancestors` is each event's last Tetragon field (after `parent` in
    /// process_exec, `time` in process_exit, `user_stack_trace` and `tags`
    /// in hook events, before our own `mode`), each ancestor with its pid as
    /// `tid`; an empty chain writes no key.
    #[test]
    fn ancestors_are_written_last_of_tetragons_fields() {
        let named = |pid: u32, exec_id: &str| {
            Arc::new(Process {
                exec_id: exec_id.into(),
                pid,
                ..Process::default()
            })
        };
        let chain = [named(100, "Zw=="), named(1, "aW5pdA==")];
        let (p, parent) = (Process::default(), named(200, "cA=="));
        let text = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
        let exec = text(&exec_event(&p, Some(&parent), &chain, "n").line);
        let first = r#""ancestors":[{"exec_id":"Zw==","pid":100,"uid":0,"auid":0,"tid":100,"in_init_tree":false},"#;
        assert!(
            exec.contains(&format!(r#""tid":200,"in_init_tree":false}},{first}"#)),
            "{exec}"
        );
        assert!(
            exec.contains(
                r#""pid":1,"uid":0,"auid":0,"tid":1,"in_init_tree":false}]},"node_name""#
            ),
            "{exec}"
        );
        let exit = text(&exit_event(&p, Some(&parent), &chain, Some(9), "t", "n").line);
        assert!(exit.contains(&format!(r#""time":"t",{first}"#)), "{exit}");
        let meta = HookMeta {
            policy_name: "p".into(),
            namespace: String::new(),
            kind: HookKind::Tracepoint {
                subsystem: "raw_syscalls".into(),
                event: "sys_enter".into(),
            },
            args: vec![],
            message: None,
            tags: vec!["t".into()],
            monitor_only: false,
            return_position: None,
            data_from: None,
            return_half: ReturnHalf::None,
            daemon_actions: vec![],
        };
        let clock = Clock::at_boot(0);
        let (_, line) = policy_event(&event(), &[], &meta, &p, None, &chain, &clock, "n");
        let hook = text(&line);
        assert!(hook.contains(&format!(r#""tags":["t"],{first}"#)), "{hook}");
        assert!(
            hook.contains(r#""tid":1,"in_init_tree":false}],"mode":"#),
            "{hook}"
        );
        let (_, line) = policy_event(&event(), &[], &meta, &p, None, &[], &clock, "n");
        assert!(!String::from_utf8_lossy(&line).contains("ancestors"));
    }

    #[test]
    fn exit_signal_and_status() {
        let p = Process::default();
        let v: Value = serde_json::from_slice(&exit_event(&p, None, &[], Some(9), "t", "n").line)
            .expect("JSON");
        assert_eq!(v["process_exit"]["signal"], "SIGKILL");
        assert!(v["process_exit"].get("status").is_none());
        let v: Value =
            serde_json::from_slice(&exit_event(&p, None, &[], Some(3 << 8), "t", "n").line)
                .expect("JSON");
        assert_eq!(v["process_exit"]["status"], 3);
        assert!(v["process_exit"].get("signal").is_none());
        assert_eq!(signal_name(64), "SIG64");
    }

    #[test]
    fn rate_limit_info_counts_as_string() {
        let v: Value =
            serde_json::from_slice(&rate_limit_info(12, "ring_buffer", "", "t", "n").line)
                .expect("JSON");
        assert_eq!(
            v["rate_limit_info"]["number_of_dropped_process_events"],
            "12"
        );
        assert_eq!(v["rate_limit_info"]["reason"], "ring_buffer");
        assert!(v["rate_limit_info"].get("policy_name").is_none());
    }

    /// Processes with every field empty or full, and text that needs
    /// escaping.
    fn processes_to_render() -> Vec<Process> {
        let full = Process {
            exec_id: "aWQ6MTIz".into(),
            pid: 7,
            uid: 1000,
            auid: u32::MAX,
            cwd: "/home/é \"q\"".into(),
            binary: "/bin/\\odd\tname".into(),
            arguments: "-c \"echo \\\"hi\\\"\" \u{1}".into(),
            flags: "execve rootcwd".into(),
            start_ns: 9,
            start_time: "2026-12-02T10:00:00.000000001Z".into(),
            ppid: 1,
            parent_exec_id: "cGFyZW50".into(),
            in_init_tree: true,
            binary_properties: Some(crate::process::binary::BinaryProperties {
                setuid: Some(0),
                setgid: Some(5),
                privileges_changed: vec![
                    crate::process::binary::RAISED_SETUID,
                    crate::process::binary::RAISED_FILE_CAP,
                ],
                unlinked: Some((u64::MAX, 0)),
            }),
            caps: Some(crate::capabilities::CapSets {
                effective: 1 << 21,
                inheritable: 0,
                permitted: 1 | 1 << 21,
            }),
            cred: Some(tetragond_ebpf::CredInfo {
                uid: 1000,
                euid: 0,
                suid: 2,
                fsgid: 3,
                securebits: 0x10,
                cap_effective: 1,
                user_ns: tetragond_ebpf::UserNsInfo {
                    level: 2,
                    uid: 1000,
                    gid: 1000,
                    inum: 4026532001,
                },
                ..Default::default()
            }),
            ns: Some({
                let mut ns = crate::event_args::host_namespaces();
                ns[usize::from(tetragond_ebpf::ns_kind::NET)] = 4026532999;
                ns[usize::from(tetragond_ebpf::ns_kind::TIME)] = 0;
                ns
            }),
            json: Default::default(),
        };
        vec![full, Process::default()]
    }

    fn hook_metas() -> Vec<HookMeta> {
        let all_args: Vec<(String, Option<String>)> =
            ["int", "uint64", "string", "file", "sock", "cred"]
                .iter()
                .enumerate()
                .map(|(i, ty)| (ty.to_string(), (i % 2 == 0).then(|| format!("l{i}\""))))
                .collect();
        let kinds = [
            HookKind::Tracepoint {
                subsystem: "raw_syscalls".into(),
                event: "sys_enter".into(),
            },
            HookKind::Kprobe {
                function: String::new(),
            },
            HookKind::Lsm {
                function: "file_open".into(),
            },
            HookKind::Uprobe {
                path: "/bin/ba\"sh".into(),
                symbol: "readline".into(),
            },
        ];
        let mut metas = vec![];
        for (n, kind) in kinds.into_iter().enumerate() {
            metas.push(HookMeta {
                policy_name: format!("policy-{n}"),
                namespace: if n % 2 == 0 {
                    String::new()
                } else {
                    "ns".into()
                },
                kind,
                args: all_args[..n + 2].to_vec(),
                message: (n != 1).then(|| "a \"message\"\n".into()),
                tags: (0..n).map(|t| format!("tag{t}")).collect(),
                monitor_only: n == 3,
                return_position: [None, Some(0), Some(3), Some(99)][n],
                data_from: None,
                return_half: ReturnHalf::None,
                daemon_actions: vec![],
            });
        }
        metas.push(HookMeta {
            args: all_args[..1].to_vec(),
            return_position: Some(0),
            data_from: None,
            ..metas[0].clone()
        });
        // A kprobe with data values after its args, and one with data only.
        for from in [2, 0] {
            metas.push(HookMeta {
                args: all_args[..4].to_vec(),
                data_from: Some(from),
                ..metas[1].clone()
            });
        }
        // A tracepoint's array of longs (its size is the raw value, 77:
        // nine whole elements) between two args.
        metas.push(HookMeta {
            args: vec![
                all_args[0].clone(),
                ("const_buf".into(), Some("array".into())),
                all_args[2].clone(),
            ],
            ..metas[0].clone()
        });
        metas
    }

    /// The hand-written lines are byte for byte what the serde rendering
    /// (kept in `reference`) wrote, for every kind of line.
    #[test]
    fn lines_are_byte_identical_to_the_serde_rendering() {
        let clock = Clock::at_boot(1_795_924_231_000_000_001);
        let mut data = vec![0u8; 6 * tetragond_ebpf::STR_LEN];
        data[2 * tetragond_ebpf::STR_LEN..][..8].copy_from_slice(b"str\"\xffin\n");
        data[3 * tetragond_ebpf::STR_LEN..][..9].copy_from_slice(b"/etc/pass");
        let array = data[tetragond_ebpf::STR_LEN..][..80].as_chunks_mut::<8>().0;
        for (i, element) in array.iter_mut().enumerate() {
            element.copy_from_slice(&(i as u64 * 1000 + 1).to_le_bytes());
        }
        let mut ev = event();
        ev.args = [u64::MAX, 77, 8, 9, 0];
        let procs = processes_to_render();
        let chain: Vec<Arc<Process>> = procs.iter().cloned().map(Arc::new).collect();
        // (parent, ancestors): none, a parent only, a parent and a chain.
        let lineages: [(Option<&Process>, &[Arc<Process>]); 3] = [
            (None, &[]),
            (Some(&procs[0]), &[]),
            (Some(&procs[0]), &chain),
        ];
        let mut compared = 0;
        for meta in hook_metas() {
            for (mode, enforced) in [(MODE_MONITOR as u8, 0), (0, 1)] {
                ev.mode = mode;
                ev.enforced = enforced;
                for (parent, ancestors) in lineages {
                    for process in &procs {
                        let old = reference::policy_event(
                            &ev, &data, &meta, process, parent, ancestors, &clock, "nó\"de",
                        );
                        let new = policy_event(
                            &ev, &data, &meta, process, parent, ancestors, &clock, "nó\"de",
                        );
                        assert_eq!(new.0, old.kind);
                        assert_eq!(String::from_utf8_lossy(&new.1), old.line);
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 8 * 2 * 3 * 2);
        for (parent, ancestors) in lineages {
            for process in &procs {
                let old = reference::exec_event(process, parent, ancestors, "n");
                let new = exec_event(process, parent, ancestors, "n");
                assert_eq!(String::from_utf8_lossy(&new.line), old.line);
                for status in [None, Some(9), Some(3 << 8), Some(0)] {
                    let old = reference::exit_event(process, parent, ancestors, status, "t\"", "n");
                    let new = exit_event(process, parent, ancestors, status, "t\"", "n");
                    assert_eq!(String::from_utf8_lossy(&new.line), old.line);
                }
            }
        }
        for policy in ["", "p\\"] {
            let old = reference::rate_limit_info(u64::MAX, "ring_buffer", policy, "t", "n");
            let new = rate_limit_info(u64::MAX, "ring_buffer", policy, "t", "n");
            assert_eq!(String::from_utf8_lossy(&new.line), old.line);
        }
    }

    #[test]
    fn decode_checks_length() {
        assert!(decode(&[0u8; 8]).is_none());
    }
}
