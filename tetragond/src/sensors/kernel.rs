//! The loaded BPF object: its programs, its maps, and typed operations on
//! them. One instance per daemon; every policy shares the programs and owns
//! entries in the maps.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    os::fd::AsFd,
    sync::Arc,
};

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf,
    },
    programs::TracePoint,
    Ebpf, EbpfLoader, VerifierLogLevel,
};
use tetragond_ebpf::{
    site, EventInfo, ExePath, ExecCreds, GateKey, HookConf, HookKey, HookSet, PolicyCounters,
    PrefixGateData, StructOffsets, TaskTrackingOffsets, BINARY_GATE_ENTRIES, HOOK_LIST_ENTRIES,
    MAX_WRITES, PREFIX_GATE_ALL, PREFIX_GATE_ENTRIES, STR_TRIE_HEADER_BITS,
};

use super::{
    bpf_syscall::{tracepoint_link, tracepoint_perf_event},
    dispatch::{DispatchSets, Listing, ListingGate, SetId, SetWrite},
    entries::EntryMaps,
    functions::FunctionAttachments,
    hook_table::HookTable,
    map_flags,
    object::{exe_path, log_verified, map_err, map_full, take, taken},
    pin::{Held, Pins},
    sock_owners::SockOwners,
    stubs::{self, StubKind},
    uprobes,
};
use crate::{
    compile::{Attach, FunctionTarget, MapEntry, UprobeTarget},
    error::SensorError,
    kernel_info::{
        btf::{self, KernelBtf},
        offsets, tracefs,
    },
    policy::ima::ImaSubject,
};

/// The object built by build.rs from tetragond-ebpf.
pub(super) static BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tetragond.bpf.o"));

const TASK_PROGRAMS: &[&str] = &["task_exec", "task_fork", "task_exit", "task_free"];

/// A tracepoint attachment shared by every hook on it.
struct Attachment {
    site: u32,
    /// Taken from aya (and pinned when it is a BPF link): released on detach.
    link: Held,
    users: usize,
}

/// Which entry point serves a tracepoint, and the field holding the
/// syscall number for syscall sites.
fn site_for(subsystem: &str, event: &str) -> Option<(u32, &'static str, &'static str)> {
    match (subsystem, event) {
        ("raw_syscalls", "sys_enter") => Some((site::RAW_SYS_ENTER, "tp_raw_sys_enter", "id")),
        ("raw_syscalls", "sys_exit") => Some((site::RAW_SYS_EXIT, "tp_raw_sys_exit", "id")),
        ("syscalls", e) if e.starts_with("sys_enter_") => {
            Some((site::SYSCALLS_ENTER, "tp_syscalls_enter", "__syscall_nr"))
        }
        ("syscalls", e) if e.starts_with("sys_exit_") => {
            Some((site::SYSCALLS_EXIT, "tp_syscalls_exit", "__syscall_nr"))
        }
        _ => None,
    }
}

pub struct Kernel {
    ebpf: Ebpf,
    helpers: Helpers,
    hooks: HookTable,
    hook_lists: BpfHashMap<MapData, HookKey, HookSet>,
    binary_gates: BpfHashMap<MapData, GateKey, HookSet>,
    prefix_gates: LpmTrie<MapData, PrefixGateData, HookSet>,
    event_info: BpfHashMap<MapData, u32, EventInfo>,
    policy_mode: Array<MapData, u32>,
    counters: PerCpuArray<MapData, PolicyCounters>,
    task_exe: BpfHashMap<MapData, u32, ExePath>,
    sock_owners: SockOwners,
    /// Where policies' map entries go.
    entries: EntryMaps,
    /// Read by the hand-written fmod_ret programs (by descriptor).
    override_decision: MapData,
    functions: FunctionAttachments,
    /// Maps taken out of the object only to be written once; programs
    /// loaded later still refer to them.
    /// The running kernel's BTF, parsed once at load (None when unreadable).
    btf: Option<Arc<KernelBtf>>,
    task_offsets: Option<Array<MapData, TaskTrackingOffsets>>,
    struct_offsets: Option<Array<MapData, StructOffsets>>,
    /// Mirror of `HOOK_LISTS`, `BINARY_GATES` and `PREFIX_GATES`, so a set can be
    /// rewritten in one update.
    dispatch: DispatchSets,
    attachments: HashMap<(String, String), Attachment>,
    /// Uprobe links by hook slot (each uprobe hook attaches on its own).
    uprobe_links: HashMap<u32, Held>,
    /// Hooks with Set by where they are attached (binary and location):
    /// a passage queues at most `MAX_WRITES` writes.
    writing_uprobes: HashMap<u32, String>,
    /// Process tracking (sched_process_exec, _fork, _exit, _free): attached for
    /// the daemon's life, pinned like every other link.
    task_links: Vec<Held>,
    /// Where links are pinned (this run's generation), shared with the
    /// daemon, which commits or removes it.
    pins: Pins,
    /// The last `HookConf::install_id` given (see `write_hook`).
    next_install_id: u32,
    /// `tp_generic_from_stub` is loaded and in `STUB_TARGET` (tracepoint
    /// stubs may be attached).
    stub_target_ready: bool,
}

/// What the daemon's configuration decides about the kernel side, fixed
/// for its life.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// The event ring buffer's size, a power of two in
    /// [`super::ring_size::RING_BYTES`].
    pub ring_bytes: u32,
    /// Whether exec records carry the credentials (`enable_process_cred`).
    pub exec_credentials: bool,
}

impl Kernel {
    /// Loads the object, its programs and maps, and starts task tracking.
    /// Every link made from now on is pinned in `pins` (when it is enabled).
    pub fn load(pins: Pins, options: LoadOptions) -> Result<Self, SensorError> {
        if BPF_OBJECT.is_empty() {
            return Err(SensorError::Load(
                "this binary was built with TETRAGOND_SKIP_BPF=1 and carries no kernel programs"
                    .into(),
            ));
        }
        // Full verifier logs of a rejected program can take minutes to
        // produce; ask for them explicitly (TETRAGOND_VERIFIER_LOG=debug).
        let log_level = match std::env::var("TETRAGOND_VERIFIER_LOG").as_deref() {
            Ok("debug") => VerifierLogLevel::DEBUG | VerifierLogLevel::STATS,
            _ => VerifierLogLevel::STATS,
        };
        let helpers = Helpers::probe();
        // Struct offsets, kernel-function parameters, fmod_ret targets and
        // the maps' allocation all come from it.
        let btf = KernelBtf::from_sys_fs()
            .inspect_err(|e| {
                tracing::warn!(
                    "kernel BTF: {e}; exec arguments, exit codes and pointer arguments cannot be read"
                )
            })
            .ok()
            .map(Arc::new);
        let object = if map_flags::allocates_on_demand(btf.as_deref()) {
            Cow::Owned(map_flags::allocated_on_demand(BPF_OBJECT).map_err(SensorError::Load)?)
        } else {
            tracing::info!(
                "this kernel predates the BPF memory allocator (Linux 6.1): policy maps are preallocated"
            );
            Cow::Borrowed(BPF_OBJECT)
        };
        let mut ebpf = EbpfLoader::new()
            .verifier_log_level(log_level)
            .map_max_entries("EVENTS", options.ring_bytes)
            .override_global(
                "HAS_ANCESTOR_CGROUP_ID",
                &u8::from(helpers.ancestor_cgroup_id),
                true,
            )
            .override_global("HAS_ATTACH_COOKIE", &u8::from(helpers.attach_cookie), true)
            .override_global("BPRM_FILE_OFFSET", &bprm_file_offset(btf.as_deref()), true)
            .override_global(
                "EXEC_CREDENTIALS",
                &u8::from(options.exec_credentials),
                true,
            )
            .load(&object)
            .map_err(|e| SensorError::Load(e.to_string()))?;
        // Dispatch programs are verified when a site is first used: each
        // takes the verifier a noticeable fraction of a second.
        for name in TASK_PROGRAMS {
            load_program(&mut ebpf, name)?;
        }
        let mut kernel = Kernel {
            hooks: HookTable::new(taken(ebpf.take_map("HOOKS"), "HOOKS")?)?,
            hook_lists: take!(ebpf, BpfHashMap, "HOOK_LISTS"),
            binary_gates: take!(ebpf, BpfHashMap, "BINARY_GATES"),
            prefix_gates: take!(ebpf, LpmTrie, "PREFIX_GATES"),
            event_info: take!(ebpf, BpfHashMap, "EVENT_INFO"),
            policy_mode: take!(ebpf, Array, "POLICY_MODE"),
            counters: take!(ebpf, PerCpuArray, "POLICY_COUNTERS"),
            task_exe: take!(ebpf, BpfHashMap, "TASK_EXE"),
            sock_owners: SockOwners::new(
                take!(ebpf, BpfHashMap, "SOCK_OWNERS"),
                take!(ebpf, Array, "SOCK_TRACKING"),
            ),
            entries: EntryMaps::take(&mut ebpf)?,
            override_decision: match ebpf.take_map("OVERRIDE_DECISION") {
                Some(aya::maps::Map::LruHashMap(data)) => data,
                _ => {
                    return Err(SensorError::Map {
                        map: "OVERRIDE_DECISION",
                        message: "missing from the BPF object, or not an LRU hash".into(),
                    })
                }
            },
            helpers,
            functions: FunctionAttachments::new(btf.clone(), pins.clone())
                .with_perf_cookies(helpers.attach_cookie),
            btf,
            task_offsets: None,
            struct_offsets: None,
            ebpf,
            dispatch: DispatchSets::default(),
            attachments: HashMap::new(),
            uprobe_links: HashMap::new(),
            writing_uprobes: HashMap::new(),
            task_links: Vec::new(),
            pins,
            next_install_id: 0,
            stub_target_ready: false,
        };
        // Offsets first: exec records read the working directory with them.
        kernel.set_struct_offsets()?;
        kernel.start_task_tracking()?;
        Ok(kernel)
    }

    /// The ring buffer of posted events (taken once, by the event reader).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, SensorError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| SensorError::Map {
                map: "EVENTS",
                message: "already taken".into(),
            })?;
        RingBuf::try_from(map).map_err(map_err("EVENTS"))
    }

    fn start_task_tracking(&mut self) -> Result<(), SensorError> {
        let exec = tracefs::read_format("sched", "sched_process_exec")?;
        let fork = tracefs::read_format("sched", "sched_process_fork")?;
        let free = tracefs::read_format("sched", "sched_process_free")?;
        let field = |f: &tracefs::Format, name: &str, tp: &str| {
            f.field(name)
                .map(|f| f.offset)
                .ok_or_else(|| SensorError::BadFormat(format!("{tp}: no field {name}")))
        };
        let mut offsets = TaskTrackingOffsets {
            exec_filename: field(&exec, "filename", "sched_process_exec")?,
            fork_child_pid: field(&fork, "child_pid", "sched_process_fork")?,
            free_pid: field(&free, "pid", "sched_process_free")?.into(),
            ..Default::default()
        };
        match self.btf.as_deref().map(task_offsets) {
            Some(Ok(o)) => {
                (
                    offsets.task_mm,
                    offsets.mm_arg_start,
                    offsets.mm_arg_end,
                    offsets.task_exit_code,
                ) = o;
                offsets.from_btf = 1;
            }
            // Still enforceable: events just lack argv and exit codes from
            // the kernel (user space falls back to /proc).
            Some(Err(e)) => {
                tracing::warn!("kernel BTF: {e}; exec arguments and exit codes come from /proc")
            }
            // Unreadable BTF was reported at load.
            None => {}
        }
        let mut map: Array<_, TaskTrackingOffsets> = take!(self.ebpf, Array, "TASK_OFFSETS");
        map.set(0, &offsets, 0).map_err(map_err("TASK_OFFSETS"))?;
        self.task_offsets = Some(map);
        self.seed_task_exe();
        for (prog, event) in [
            ("task_exec", "sched_process_exec"),
            ("task_fork", "sched_process_fork"),
            ("task_exit", "sched_process_exit"),
            ("task_free", "sched_process_free"),
        ] {
            let attach_err = |message: String| SensorError::Attach {
                tracepoint: format!("sched/{event}"),
                message,
            };
            let p = program(&mut self.ebpf, prog)?;
            let id = p
                .attach("sched", event)
                .map_err(|e| attach_err(e.to_string()))?;
            let link = p.take_link(id).map_err(|e| attach_err(e.to_string()))?;
            let held = self
                .pins
                .hold_tracepoint(&format!("task-sched-{event}"), link);
            self.task_links.push(held);
        }
        self.seed_exec_creds();
        Ok(())
    }

    /// Processes that started before us: their credentials from /proc, as
    /// references for the change selectors. After the exec program is
    /// attached, and without replacing its entries: a process that execs
    /// meanwhile keeps the kernel's fresher one.
    fn seed_exec_creds(&mut self) {
        let Some(map) = self.ebpf.map_mut("EXEC_CREDS") else {
            return;
        };
        let Ok(mut map) = BpfHashMap::<_, u32, ExecCreds>::try_from(map) else {
            return;
        };
        for pid in crate::process::procfs::pids() {
            if let Some(creds) = crate::process::procfs::exec_creds(pid) {
                // BPF_NOEXIST: an entry the kernel wrote stays.
                let _ = map.insert(&pid, &creds, 1);
            }
        }
    }

    /// Struct member offsets for pointer arguments, from the kernel's BTF.
    /// Without BTF, only integer arguments are read (and a warning says so).
    fn set_struct_offsets(&mut self) -> Result<(), SensorError> {
        let offsets = match self.btf.as_deref().map(offsets::struct_offsets) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                tracing::warn!("kernel BTF: {e}; file, path and socket arguments cannot be read");
                StructOffsets::default()
            }
            None => StructOffsets::default(),
        };
        let mut map: Array<_, StructOffsets> = take!(self.ebpf, Array, "STRUCT_OFFSETS");
        map.set(0, &offsets, 0).map_err(map_err("STRUCT_OFFSETS"))?;
        // Programs loaded later refer to the map by this fd: keep it open.
        self.struct_offsets = Some(map);
        Ok(())
    }

    /// The kernel's BTF, for compiling (kernel-function parameter counts).
    pub fn btf(&self) -> Option<Arc<KernelBtf>> {
        self.btf.clone()
    }

    /// Binds a program of `target`'s family to its function or LSM hook
    /// (once per target); returns the site its hooks are listed under.
    fn attach_function(&mut self, target: &FunctionTarget) -> Result<u32, SensorError> {
        use std::os::fd::{AsFd, AsRawFd};
        let decision_map = self.override_decision.fd().as_fd().as_raw_fd();
        self.functions.attach(&mut self.ebpf, target, decision_map)
    }

    fn detach_function(&mut self, target: &FunctionTarget) {
        self.functions.detach(&mut self.ebpf, target);
    }

    /// Writes one of a hook's map entries.
    pub fn add_entry(&mut self, hook_slot: u32, entry: &MapEntry) -> Result<(), SensorError> {
        self.entries.add(hook_slot, entry)
    }

    pub fn remove_entry(&mut self, hook_slot: u32, entry: &MapEntry) {
        self.entries.remove(hook_slot, entry);
    }

    /// Attaches the program of the hook in `hook_slot`; returns the site its
    /// dispatch keys are under, None for uprobes (found by their cookie).
    pub fn attach_hook(
        &mut self,
        attach: &Attach,
        hook_slot: u32,
    ) -> Result<Option<u32>, SensorError> {
        match attach {
            Attach::Tracepoint { subsystem, event } => self.attach(subsystem, event).map(Some),
            Attach::Function(target) => self.attach_function(target).map(Some),
            Attach::Uprobe(target) => self.attach_uprobe(target, hook_slot).map(|()| None),
        }
    }

    /// Undoes [`Kernel::attach_hook`].
    pub fn detach_hook(&mut self, attach: &Attach, hook_slot: u32) {
        match attach {
            Attach::Tracepoint { subsystem, event } => self.detach(subsystem, event),
            Attach::Function(target) => self.detach_function(target),
            Attach::Uprobe(_) => self.detach_uprobe(hook_slot),
        }
    }

    /// Processes that started before us: their executables from /proc.
    fn seed_task_exe(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
                continue;
            };
            if let Some(path) = exe_path(&exe.to_string_lossy()) {
                let _ = self.task_exe.insert(&pid, &path, 0);
            }
        }
    }

    /// Attaches the entry point serving a tracepoint (once per tracepoint);
    /// returns its site for the dispatch keys.
    fn attach(&mut self, subsystem: &str, event: &str) -> Result<u32, SensorError> {
        let key = (subsystem.to_string(), event.to_string());
        if let Some(a) = self.attachments.get_mut(&key) {
            a.users += 1;
            return Ok(a.site);
        }
        let (site, link) = match site_for(subsystem, event) {
            Some((site, program, nr_field)) => {
                let format = tracefs::read_format(subsystem, event)?;
                let offset = format.field(nr_field).map(|f| f.offset).ok_or_else(|| {
                    SensorError::BadFormat(format!("{subsystem}/{event}: no field {nr_field}"))
                })?;
                self.set_event_info(
                    site,
                    EventInfo {
                        syscall_offset: offset,
                        _pad: [0; 6],
                    },
                )?;
                (site, self.attach_program(program, subsystem, event)?)
            }
            None => {
                let k = free_site(
                    &self.attachments,
                    site::GENERIC_ANY_BASE,
                    site::GENERIC_ANY_SLOTS,
                )
                .ok_or_else(|| {
                    SensorError::Full(format!(
                        "at most {} distinct non-syscall tracepoints can be hooked at once",
                        site::GENERIC_ANY_SLOTS
                    ))
                })?;
                let site = site::GENERIC_ANY_BASE + k;
                let held = if self.helpers.attach_cookie {
                    self.attach_by_cookie(subsystem, event, site)?
                } else {
                    self.attach_by_stub(subsystem, event, site)?
                };
                (site, held)
            }
        };
        self.attachments.insert(
            key,
            Attachment {
                site,
                link,
                users: 1,
            },
        );
        Ok(site)
    }

    /// Attaches tracepoint program `name` (loaded on first use) to
    /// `subsystem/event`.
    fn attach_program(
        &mut self,
        name: &str,
        subsystem: &str,
        event: &str,
    ) -> Result<Held, SensorError> {
        let prog = self.loaded_program(name)?;
        let attach_err = |e: aya::programs::ProgramError| attach_error(subsystem, event, e);
        let id = prog.attach(subsystem, event).map_err(attach_err)?;
        let link = prog.take_link(id).map_err(attach_err)?;
        Ok(self
            .pins
            .hold_tracepoint(&format!("tp-{subsystem}-{event}"), link))
    }

    /// Attaches `tp_generic_any` to `subsystem/event` with `site`'s number
    /// in its range as the link's cookie.
    fn attach_by_cookie(
        &mut self,
        subsystem: &str,
        event: &str,
        site: u32,
    ) -> Result<Held, SensorError> {
        let k = site - site::GENERIC_ANY_BASE;
        let id = tracefs::event_id(subsystem, event)?;
        let prog = self.loaded_program(GENERIC_ANY)?;
        let fd = prog
            .fd()
            .map_err(|e| SensorError::Load(format!("{GENERIC_ANY}: {e}")))?;
        let link =
            tracepoint_link(fd.as_fd(), id, u64::from(k)).map_err(|e| SensorError::Attach {
                tracepoint: format!("{subsystem}/{event}"),
                message: format!("linking {GENERIC_ANY} with a cookie: {e}"),
            })?;
        tracing::info!(
            "tracepoint {subsystem}/{event} served by program {GENERIC_ANY} (site {site})"
        );
        Ok(self
            .pins
            .hold_owned(&format!("tp-{subsystem}-{event}"), link))
    }

    /// Attaches a stub of its own (`stubs`) to `subsystem/event`, which
    /// enters `tp_generic_from_stub` with `site`: where tracepoint links
    /// carry no cookie.
    fn attach_by_stub(
        &mut self,
        subsystem: &str,
        event: &str,
        site: u32,
    ) -> Result<Held, SensorError> {
        let id = tracefs::event_id(subsystem, event)?;
        self.ready_stub_target()?;
        let stub = stubs::load_for(&self.ebpf, StubKind::Tracepoint, site)?;
        let perf_event =
            tracepoint_perf_event(stub.as_fd(), id).map_err(|e| SensorError::Attach {
                tracepoint: format!("{subsystem}/{event}"),
                message: format!("attaching its stub: {e}"),
            })?;
        tracing::info!(
            "tracepoint {subsystem}/{event} served by program {FROM_STUB} (site {site}, through a stub of its own)"
        );
        Ok(self
            .pins
            .hold_perf_event(&format!("tp-{subsystem}-{event}"), perf_event, stub))
    }

    /// Loads `tp_generic_from_stub` and puts it in `STUB_TARGET[0]`, once:
    /// before any stub is attached, so no stub's tail call can miss.
    fn ready_stub_target(&mut self) -> Result<(), SensorError> {
        if self.stub_target_ready {
            return Ok(());
        }
        let fd = (self.loaded_program(FROM_STUB)?.fd())
            .map_err(|e| SensorError::Load(format!("{FROM_STUB}: {e}")))?
            .try_clone()
            .map_err(|e| SensorError::Load(format!("{FROM_STUB}: {e}")))?;
        stubs::set_target(&mut self.ebpf, StubKind::Tracepoint, fd)?;
        self.stub_target_ready = true;
        Ok(())
    }

    /// Tracepoint program `name`, loaded on first use.
    fn loaded_program(&mut self, name: &str) -> Result<&mut TracePoint, SensorError> {
        if program(&mut self.ebpf, name)?.fd().is_err() {
            load_program(&mut self.ebpf, name)?;
        }
        program(&mut self.ebpf, name)
    }

    /// Attaches the uprobe (or uretprobe) entry point `target` names, with
    /// `hook_slot` as its cookie (the program finds the hook by it).
    fn attach_uprobe(&mut self, target: &UprobeTarget, hook_slot: u32) -> Result<(), SensorError> {
        let place = format!("{}:{}", target.binary, target.location);
        let writers_here = self.writing_uprobes.values().filter(|p| **p == place);
        if target.writes && writers_here.count() >= MAX_WRITES {
            return Err(SensorError::Full(format!(
                "at most {MAX_WRITES} hooks with Set can be attached at one USDT probe site ({place})"
            )));
        }
        let prog = uprobes::loaded(&mut self.ebpf, uprobes::program_of(target))?;
        let link = uprobes::link(prog, &self.pins, target, hook_slot)?;
        self.uprobe_links.insert(hook_slot, link);
        if target.writes {
            self.writing_uprobes.insert(hook_slot, place);
        }
        Ok(())
    }

    fn detach_uprobe(&mut self, hook_slot: u32) {
        self.writing_uprobes.remove(&hook_slot);
        if let Some(link) = self.uprobe_links.remove(&hook_slot) {
            self.pins.release(link);
        }
    }

    fn detach(&mut self, subsystem: &str, event: &str) {
        let key = (subsystem.to_string(), event.to_string());
        let Some(a) = self.attachments.get_mut(&key) else {
            return;
        };
        a.users -= 1;
        if a.users == 0 {
            if let Some(a) = self.attachments.remove(&key) {
                self.pins.release(a.link);
            }
        }
    }

    fn set_event_info(&mut self, event_id: u32, info: EventInfo) -> Result<(), SensorError> {
        self.event_info
            .insert(&event_id, &info, 0)
            .map_err(map_err("EVENT_INFO"))
    }

    /// Verifies the raw syscall entry point if no policy did yet: most
    /// policies hook it, and this spares the first one the verifier's
    /// delay (a fifth of a second here). Called once the daemon is ready,
    /// so that start-up does not wait for it.
    pub fn warm_up(&mut self) {
        let loaded = program(&mut self.ebpf, "tp_raw_sys_enter").is_ok_and(|p| p.fd().is_ok());
        if !loaded {
            if let Err(e) = load_program(&mut self.ebpf, "tp_raw_sys_enter") {
                tracing::warn!("verifying tp_raw_sys_enter ahead of use: {e}");
            }
        }
    }

    pub fn write_hook(&mut self, slot: u32, conf: &HookConf) -> Result<(), SensorError> {
        // A fresh id per write: the kernel's rate limit state of whatever
        // hook had this slot before does not carry over.
        self.next_install_id = self.next_install_id.wrapping_add(1);
        let conf = HookConf {
            install_id: self.next_install_id,
            ..*conf
        };
        self.hooks.write(slot, &conf)?;
        self.sock_owners.hook_written(slot, &conf);
        Ok(())
    }

    /// `slot` holds no hook any more (it is in no dispatch list).
    pub fn free_hook(&mut self, slot: u32) {
        self.hooks.retire(slot);
        self.sock_owners.hook_freed(slot);
    }

    /// The aggregation window (`AGGREGATE_WINDOW`; zero: off).
    pub fn set_aggregate_window(&mut self, window: std::time::Duration) -> Result<(), SensorError> {
        let map = self
            .ebpf
            .map_mut("AGGREGATE_WINDOW")
            .ok_or(SensorError::Map {
                map: "AGGREGATE_WINDOW",
                message: "missing from the BPF object".into(),
            })?;
        let mut array: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(map_err("AGGREGATE_WINDOW"))?;
        let ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        array.set(0, &ns, 0).map_err(map_err("AGGREGATE_WINDOW"))
    }

    /// Takes `old` listings out of the dispatch sets and puts `new` ones
    /// in, make before break (see [`DispatchSets`]); if one update fails,
    /// the sets already rewritten are put back, so a failed swap leaves
    /// every set as it was.
    pub fn swap_lists(&mut self, old: &[Listing], new: &[Listing]) -> Result<(), SensorError> {
        self.hooks.delete_retired();
        for listing in new {
            let reader = match &listing.gate {
                ListingGate::Prefix { reader, .. } => Some(*reader),
                _ => None,
            };
            self.dispatch.set_slot(listing.slot, listing.stacks, reader);
        }
        let old = self.old_set_ids(old);
        let new = self.new_set_ids(new);
        let swap = self.dispatch.plan(&old, &new);
        for stage in swap.stages() {
            let writes = self.dispatch.writes(stage);
            if let Err(e) = self.write_sets(&writes) {
                let restore = self.dispatch.writes(swap.before());
                for write in restore {
                    if let Err(e) = self.write_set(&write) {
                        tracing::error!("restoring dispatch set {:?}: {e}", write.id);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The sets new listings go to: gated ones by their executable's id,
    /// or by their prefix. A path with no id (its hook's entries were not
    /// written), or a prefix gate read otherwise than the key's gates
    /// read theirs, is listed for every event: the hook still checks its
    /// selectors itself.
    fn new_set_ids(&self, listings: &[Listing]) -> Vec<(SetId, u32)> {
        let mut adopted = BTreeMap::new();
        listings
            .iter()
            .map(|l| {
                let id = match &l.gate {
                    ListingGate::None => None,
                    ListingGate::Binary(path) => self
                        .entries
                        .binary_id_of(path)
                        .map(|binary_id| SetId::gate(l.key, binary_id)),
                    ListingGate::Prefix { reader, bytes } => self
                        .dispatch
                        .joins_prefix_gates(l.key, reader, &mut adopted)
                        .then(|| SetId::prefix(l.key, bytes)),
                };
                (id.unwrap_or(SetId::Every(l.key)), l.slot)
            })
            .collect()
    }

    /// The sets old listings are taken from: where [`Self::new_set_ids`]
    /// put them. A prefix-gated one may have been listed for every event
    /// instead: it is taken from both.
    fn old_set_ids(&self, listings: &[Listing]) -> Vec<(SetId, u32)> {
        let mut ids = Vec::new();
        for l in listings {
            match &l.gate {
                ListingGate::None => ids.push((SetId::Every(l.key), l.slot)),
                ListingGate::Binary(path) => ids.push((
                    self.entries
                        .binary_id_of(path)
                        .map_or(SetId::Every(l.key), |id| SetId::gate(l.key, id)),
                    l.slot,
                )),
                ListingGate::Prefix { bytes, .. } => {
                    ids.push((SetId::prefix(l.key, bytes), l.slot));
                    ids.push((SetId::Every(l.key), l.slot));
                }
            }
        }
        ids
    }

    fn write_sets(&mut self, writes: &[SetWrite]) -> Result<(), SensorError> {
        writes.iter().try_for_each(|w| self.write_set(w))
    }

    fn write_set(&mut self, write: &SetWrite) -> Result<(), SensorError> {
        match (&write.id, &write.value) {
            (SetId::Every(key), Some(set)) => self
                .hook_lists
                .insert(key, set, 0)
                .map_err(map_full("HOOK_LISTS", HOOK_LIST_ENTRIES, "dispatch keys")),
            (SetId::Gate(key), Some(set)) => {
                self.binary_gates.insert(key, set, 0).map_err(map_full(
                    "BINARY_GATES",
                    BINARY_GATE_ENTRIES,
                    "(dispatch key, binary) gates",
                ))
            }
            (SetId::Prefix(_) | SetId::PrefixAll(_), Some(set)) => self
                .prefix_gates
                .insert(&prefix_gate_key(&write.id), set, 0)
                .map_err(map_full(
                    "PREFIX_GATES",
                    PREFIX_GATE_ENTRIES,
                    "(dispatch key, string prefix) gates",
                )),
            (SetId::Every(key), None) => {
                let _ = self.hook_lists.remove(key);
                Ok(())
            }
            (SetId::Gate(key), None) => {
                let _ = self.binary_gates.remove(key);
                Ok(())
            }
            (SetId::Prefix(_) | SetId::PrefixAll(_), None) => {
                let _ = self.prefix_gates.remove(&prefix_gate_key(&write.id));
                Ok(())
            }
        }
    }

    pub fn set_mode(&mut self, policy_slot: u32, mode: u32) -> Result<(), SensorError> {
        self.policy_mode
            .set(policy_slot, &mode, 0)
            .map_err(map_err("POLICY_MODE"))
    }

    /// Sum over CPUs.
    pub fn counters(&self, policy_slot: u32) -> Result<PolicyCounters, SensorError> {
        let per_cpu = self
            .counters
            .get(&policy_slot, 0)
            .map_err(map_err("POLICY_COUNTERS"))?;
        Ok(per_cpu
            .iter()
            .fold(PolicyCounters::default(), |acc, c| PolicyCounters {
                post: acc.post + c.post,
                enforce: acc.enforce + c.enforce,
                monitor: acc.monitor + c.monitor,
                rate_limited: acc.rate_limited + c.rate_limited,
            }))
    }

    /// Zeroes a policy slot's counters before it is reused.
    pub fn reset_counters(&mut self, policy_slot: u32) -> Result<(), SensorError> {
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| SensorError::Io(what.into(), e))?;
        let zeros = vec![PolicyCounters::default(); cpus.get() as usize];
        let values = zeros
            .try_into()
            .map_err(|e: std::io::Error| SensorError::Map {
                map: "POLICY_COUNTERS",
                message: e.to_string(),
            })?;
        self.counters
            .set(policy_slot, values, 0)
            .map_err(map_err("POLICY_COUNTERS"))
    }

    /// What the kernel skipped of this daemon's programs (see `skipped`),
    /// counted from now.
    pub fn skipped_runs(&self) -> super::skipped::SkippedRuns {
        let hand_written = StubKind::ALL
            .map(StubKind::program_name)
            .into_iter()
            .chain([super::fmod_ret::PROGRAM_NAME]);
        // A skipped `task_free` loses no event and no action: the cache
        // entries it drops are replaced at the pid's next fork and are in
        // LRU maps. It is skipped now and then (sched_process_free fires
        // from RCU callbacks, in softirqs that can interrupt another of the
        // tracepoint programs, which hold the CPU's `bpf_prog_active`).
        super::skipped::SkippedRuns::new(
            self.ebpf
                .programs()
                .map(|(name, _)| name)
                .filter(|name| *name != "task_free")
                .chain(hand_written),
        )
    }

    /// Whether this kernel verifies and loads an fentry and an LSM program:
    /// loads each probe program, then unloads it.
    pub fn probe_programs(&mut self) -> Vec<(&'static str, bool)> {
        let btf = match self.functions.aya_btf() {
            Ok(btf) => btf.clone(),
            Err(e) => {
                tracing::warn!("kernel BTF unreadable: {e}");
                return vec![
                    ("bpf_trampolines", false),
                    ("bpf_lsm_programs", false),
                    ("bpf_override_return", false),
                    ("uprobe_regs", false),
                    ("ima_file_hash", false),
                ];
            }
        };
        let fentry = self
            .ebpf
            .program_mut("probe_fentry")
            .and_then(|p| <&mut aya::programs::FEntry>::try_from(p).ok())
            .is_some_and(|p| p.load("security_file_open", &btf).is_ok() && p.unload().is_ok());
        let lsm = self
            .ebpf
            .program_mut("probe_lsm")
            .and_then(|p| <&mut aya::programs::Lsm>::try_from(p).ok())
            .is_some_and(|p| p.load("file_open", &btf).is_ok() && p.unload().is_ok());
        let override_return = self
            .ebpf
            .program_mut("probe_override")
            .and_then(|p| <&mut aya::programs::KProbe>::try_from(p).ok())
            .is_some_and(|p| p.load().is_ok() && p.unload().is_ok());
        let uprobe_regs = self
            .ebpf
            .program_mut("probe_uprobe_regs")
            .and_then(|p| <&mut aya::programs::UProbe>::try_from(p).ok())
            .is_some_and(|p| p.load().is_ok() && p.unload().is_ok());
        // The companion itself, on a hook it serves: sleepable LSM programs
        // and the helper. IMA must be built in too (the helper's stub
        // answers -EOPNOTSUPP otherwise), and LSM links carry cookies
        // (`lsm_any` defers its verdict to the companion).
        let ima_file_hash = lsm
            && self.functions.trampoline_cookies()
            && self
                .btf
                .as_ref()
                .is_some_and(|b| b.function_id("ima_file_hash").is_ok())
            && self
                .ebpf
                .program_mut(ImaSubject::File.program())
                .and_then(|p| <&mut aya::programs::Lsm>::try_from(p).ok())
                .is_some_and(|p| p.load("file_open", &btf).is_ok() && p.unload().is_ok());
        self.functions.serve_ima(ima_file_hash);
        vec![
            ("bpf_trampolines", fentry),
            ("bpf_lsm_programs", lsm),
            ("bpf_override_return", override_return),
            ("uprobe_regs", uprobe_regs),
            ("ima_file_hash", ima_file_hash),
            ("ancestor_cgroup_id", self.helpers.ancestor_cgroup_id),
            ("attach_cookie", self.helpers.attach_cookie),
            ("trampoline_cookies", self.functions.trampoline_cookies()),
            (
                "raw_tracepoint_cookies",
                self.functions.raw_tracepoint_cookies(),
            ),
        ]
    }

    /// Records of `kind` (`record::*`) the kernel could not put in the ring
    /// buffer, summed over CPUs.
    pub fn losses(&self, kind: u32) -> u64 {
        let Some(map) = self.ebpf.map("LOSSES") else {
            return 0;
        };
        let Ok(array) = PerCpuArray::<_, u64>::try_from(map) else {
            return 0;
        };
        array.get(&kind, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

/// Helpers the programs call only where the kernel has them (see
/// `HAS_ANCESTOR_CGROUP_ID` in the BPF crate): probed before the object is
/// loaded, since each becomes a constant of it.
#[derive(Debug, Clone, Copy)]
struct Helpers {
    /// Namespaced policies' cgroup scopes (tracing programs: after 5.10).
    ancestor_cgroup_id: bool,
    /// Uprobes find their hook by cookie (Linux 5.15).
    attach_cookie: bool,
}

impl Helpers {
    fn probe() -> Self {
        use aya::{
            programs::ProgramType,
            sys::{is_helper_supported, BpfHelper},
        };
        let has = |helper| {
            is_helper_supported(ProgramType::TracePoint, helper).unwrap_or_else(|e| {
                tracing::warn!("probing BPF helper {helper:?}: {e}; taken as missing");
                false
            })
        };
        Helpers {
            ancestor_cgroup_id: has(BpfHelper::BPF_FUNC_get_current_ancestor_cgroup_id),
            attach_cookie: has(BpfHelper::BPF_FUNC_get_attach_cookie),
        }
    }
}

/// `linux_binprm.file` in the running kernel (IMA companions on exec
/// hooks); 0 when unknown, which the verifier then refuses at their load.
fn bprm_file_offset(btf: Option<&KernelBtf>) -> u32 {
    btf.and_then(|b| b.member_offset("linux_binprm", &["file"]).ok())
        .map_or(0, |o| o.offset)
}

/// task_struct.mm, mm_struct.arg_start, mm_struct.arg_end and
/// task_struct.exit_code in the running kernel, from its BTF.
fn task_offsets(btf: &KernelBtf) -> Result<(u32, u32, u32, u32), btf::BtfError> {
    let at = |s: &str, m: &str| btf.member_offset(s, &[m]).map(|o| o.offset);
    Ok((
        at("task_struct", "mm")?,
        at("mm_struct", "arg_start")?,
        at("mm_struct", "arg_end")?,
        at("task_struct", "exit_code")?,
    ))
}

fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<(), SensorError> {
    let prog = program(ebpf, name)?;
    prog.load()
        .map_err(|e| SensorError::Load(format!("{name}: {e:?}")))?;
    log_verified(name, prog.info().ok());
    Ok(())
}

/// The first of `slots` sites from `base` no attachment uses.
fn free_site(
    attachments: &HashMap<(String, String), Attachment>,
    base: u32,
    slots: u32,
) -> Option<u32> {
    (0..slots).find(|k| !attachments.values().any(|a| a.site == base + k))
}

fn attach_error(subsystem: &str, event: &str, e: aya::programs::ProgramError) -> SensorError {
    SensorError::Attach {
        tracepoint: format!("{subsystem}/{event}"),
        message: e.to_string(),
    }
}

/// The program serving every non-syscall tracepoint by cookie.
const GENERIC_ANY: &str = "tp_generic_any";
/// The program serving every non-syscall tracepoint through a stub (no
/// cookies).
const FROM_STUB: &str = StubKind::Tracepoint.target_program();

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut TracePoint, SensorError> {
    ebpf.program_mut(name)
        .ok_or_else(|| SensorError::Load(format!("program {name} missing from the BPF object")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| SensorError::Load(format!("{name}: {e}")))
}

/// The trie key of a prefix gate entry (`SetId::Prefix` or `PrefixAll`).
fn prefix_gate_key(id: &SetId) -> Key<PrefixGateData> {
    let mut data = PrefixGateData::default();
    let bits = match id {
        SetId::Prefix(p) => {
            data.site = p.key.site;
            data.sub_id = p.key.sub_id;
            let n = p.bytes.len().min(data.bytes.len());
            data.bytes[..n].copy_from_slice(&p.bytes[..n]);
            8 * n as u32
        }
        SetId::PrefixAll(key) => {
            data.site = key.site | PREFIX_GATE_ALL;
            data.sub_id = key.sub_id;
            0
        }
        SetId::Every(_) | SetId::Gate(_) => 0,
    };
    Key::new(STR_TRIE_HEADER_BITS + bits, data)
}
