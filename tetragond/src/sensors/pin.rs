//! Enforcement that outlives the process: every BPF link the daemon makes
//! is pinned in bpffs, under `<root>/<generation>/` (root
//! `/sys/fs/bpf/tetragond` by default). A pinned link keeps its program
//! attached, and the program keeps its maps, so after kill -9, a panic or
//! an OOM kill the kernel goes on enforcing the policy set as it was.
//!
//! A start is make-before-break: [`Pins::begin`] keeps the newest complete
//! generation an earlier run left (it goes on enforcing) and removes every
//! other one, so a crash loop never piles them up; the new run pins into
//! `<N>-loading`; once every policy is installed, [`Pins::commit`] renames
//! it `<N>` and removes the previous generation, which detaches its links.
//! For that moment both generations are attached: a forbidden call is
//! stopped by either, never by neither.
//!
//! Removing a pin never detaches a link a live process still holds (the
//! descriptor keeps it): only the last reference going away does. So
//! [`Pins::release`] unpins and then closes, and a process that exits
//! without unpinning leaves its generation enforcing.
//!
//! Perf-event based attachments (tracepoints, kprobes, uprobes) are BPF
//! links only on kernels with `BPF_LINK_TYPE_PERF_EVENT` (5.15 and later);
//! before that they are perf event descriptors, which bpffs cannot hold:
//! they stay attached only while the daemon lives, and the log says so.
//! Raw tracepoints, fentry, fexit, fmod_ret and LSM programs are always
//! BPF links.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::DirBuilderExt},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use aya::programs::{
    kprobe::KProbeLink, links::FdLink, trace_point::TracePointLink, uprobe::UProbeLink, Link as _,
};

use super::bpf_syscall::{bpf, bpf_call};

/// Where generations are pinned unless told otherwise.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/tetragond";
/// Suffix of a generation still being loaded (bpffs refuses dots in names).
const LOADING: &str = "-loading";
const BPF_FS_MAGIC: libc::c_long = 0xcafe_4a11;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
/// bpffs names are at most NAME_MAX bytes.
const NAME_MAX: usize = 255;

/// A generation folder's name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenName {
    pub number: u64,
    /// `<N>-loading`: its run never reached READY.
    pub loading: bool,
}

impl GenName {
    pub fn parse(name: &str) -> Option<Self> {
        let (digits, loading) = match name.strip_suffix(LOADING) {
            Some(d) => (d, true),
            None => (name, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(GenName {
            number: digits.parse().ok()?,
            loading,
        })
    }

    pub fn dir_name(self) -> String {
        if self.loading {
            format!("{}{LOADING}", self.number)
        } else {
            self.number.to_string()
        }
    }
}

/// What [`Pins::begin`] finds under the root and what it does with it:
/// keep the newest complete generation, remove everything else, number the
/// new one past all of them.
pub fn plan(existing: &[GenName]) -> (Option<GenName>, Vec<GenName>, u64) {
    let keep = existing
        .iter()
        .filter(|g| !g.loading)
        .max_by_key(|g| g.number);
    let remove = existing
        .iter()
        .filter(|g| Some(*g) != keep)
        .copied()
        .collect();
    let next = existing.iter().map(|g| g.number).max().map_or(1, |n| n + 1);
    (keep.copied(), remove, next)
}

/// A pin's file name: what it serves, with `/` and `.` (refused by bpffs)
/// replaced, cut to NAME_MAX.
pub fn pin_name(what: &str) -> String {
    let mut name: String = what
        .chars()
        .map(|c| match c {
            '/' | '.' | '\0' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    while name.len() > NAME_MAX {
        name.pop();
    }
    name
}

/// An attachment the daemon holds: pinned when the kernel made a BPF link
/// and pinning is on. Dropping it closes the descriptor only (a pinned
/// link stays attached); [`Pins::release`] detaches it for good.
pub struct Held {
    _link: HeldLink,
    pins: Vec<String>,
}

/// Each link is held only to be dropped (closing it).
#[allow(dead_code, reason = "the links are never read, only dropped")]
enum HeldLink {
    Fd(FdLink),
    TracePoint(TracePointLink),
    KProbe(KProbeLink),
    UProbe(UProbeLink),
    Fds(Vec<FdLink>),
    /// A link made with bpf(2) directly (see `bpf_syscall.rs`).
    Owned(OwnedFd),
    /// A perf event running a program loaded with bpf(2) directly; the
    /// program's descriptor is kept so its memory is counted as ours.
    PerfEvent {
        event: OwnedFd,
        program: OwnedFd,
    },
}

impl Held {
    fn new(link: HeldLink, pins: Vec<String>) -> Self {
        Held { _link: link, pins }
    }

    /// The pins' file names (none when not pinned).
    pub fn pins(&self) -> &[String] {
        &self.pins
    }

    /// A new descriptor of the BPF link held (None when it is not one), to
    /// ask the kernel about it.
    pub fn link_fd(&self) -> Option<OwnedFd> {
        let HeldLink::Fd(link) = &self._link else {
            return None;
        };
        link_fd_by_id(link.info().ok()?.id()).ok()
    }
}

/// The daemon's generation: shared by the kernel (which pins and unpins as
/// hooks come and go) and the main loop (which commits it at READY and
/// removes or keeps it at exit).
#[derive(Clone)]
pub struct Pins(Arc<Mutex<State>>);

struct State {
    /// None: links are not pinned at all.
    root: Option<PathBuf>,
    this: GenName,
    /// The kernel makes BPF links for perf-event attachments.
    perf_links: bool,
    /// Logged once: perf-event attachments cannot be pinned here.
    perf_warned: bool,
}

impl State {
    fn dir(&self) -> Option<PathBuf> {
        Some(self.root.as_ref()?.join(self.this.dir_name()))
    }
}

impl Pins {
    /// Nothing pinned: links live as long as the process.
    pub fn disabled() -> Self {
        Pins(Arc::new(Mutex::new(State {
            root: None,
            this: GenName {
                number: 0,
                loading: true,
            },
            perf_links: false,
            perf_warned: true,
        })))
    }

    /// Prepares a new generation under `root` (which must be on bpffs):
    /// keeps the newest complete generation an earlier run left, removes
    /// the others, and makes `<N>-loading` for this run. On error nothing
    /// is pinned (and the error says why).
    pub fn begin(root: &Path) -> io::Result<Self> {
        if !root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)?;
        }
        if !on_bpffs(root)? {
            return Err(io::Error::other(format!(
                "{} is not on a BPF file system (bpffs)",
                root.display()
            )));
        }
        let existing = generations(root)?;
        let (keep, remove, next) = plan(&existing);
        for g in remove {
            let dir = root.join(g.dir_name());
            match fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(
                    "removed {} generation {} left by an earlier run",
                    if g.loading { "incomplete" } else { "older" },
                    dir.display()
                ),
                Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
            }
        }
        let this = GenName {
            number: next,
            loading: true,
        };
        let mut number = next;
        // Another daemon on the same root may take the number first.
        let this = loop {
            let g = GenName { number, ..this };
            match fs::DirBuilder::new()
                .mode(0o700)
                .create(root.join(g.dir_name()))
            {
                Ok(()) => break g,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && number < next + 100 => {
                    number += 1
                }
                Err(e) => return Err(e),
            }
        };
        match keep {
            Some(k) => tracing::info!(
                "pinning into {}; generation {} of an earlier run enforces until this one is ready",
                root.join(this.dir_name()).display(),
                k.number
            ),
            None => tracing::info!("pinning into {}", root.join(this.dir_name()).display()),
        }
        let perf_links = match aya::sys::is_perf_link_supported() {
            Ok(yes) => yes,
            Err(e) => {
                tracing::warn!("probing for perf-event BPF links: {e}");
                false
            }
        };
        if !perf_links {
            tracing::warn!(
                "this kernel has no perf-event BPF links (Linux < 5.15): tracepoint, kprobe and \
                 uprobe attachments and process tracking cannot be pinned and stop with the \
                 daemon (kill -9, restart, upgrade); LSM, fentry and fexit programs are pinned"
            );
        }
        Ok(Pins(Arc::new(Mutex::new(State {
            root: Some(root.to_path_buf()),
            this,
            perf_links,
            perf_warned: !perf_links,
        }))))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether links are pinned at all.
    pub fn enabled(&self) -> bool {
        self.state().root.is_some()
    }

    /// Whether perf-event attachments (tracepoints, kprobes, uprobes) are
    /// pinned too: the kernel makes BPF links for them.
    pub fn perf_links(&self) -> bool {
        let s = self.state();
        s.root.is_some() && s.perf_links
    }

    /// This run's generation folder (None when not pinning).
    pub fn dir(&self) -> Option<PathBuf> {
        self.state().dir()
    }

    /// Holds a tracepoint attachment, pinned as `what` when it is a BPF link.
    pub fn hold_tracepoint(&self, what: &str, link: TracePointLink) -> Held {
        // Converting a perf-event attachment to an FdLink would detach it:
        // only BPF links are converted.
        if self.perf_links() && fd_backed(&link.id()) {
            if let Ok(fd) = FdLink::try_from(link) {
                return self.hold_fd(what, fd);
            }
            tracing::error!("{what}: not a BPF link after all, and lost converting it");
            return Held::new(HeldLink::Fds(Vec::new()), Vec::new());
        }
        self.not_pinnable(what);
        Held::new(HeldLink::TracePoint(link), Vec::new())
    }

    /// Holds a kprobe attachment, pinned as `what` when it is a BPF link.
    pub fn hold_kprobe(&self, what: &str, link: KProbeLink) -> Held {
        if self.perf_links() && fd_backed(&link.id()) {
            if let Ok(fd) = FdLink::try_from(link) {
                return self.hold_fd(what, fd);
            }
            tracing::error!("{what}: not a BPF link after all, and lost converting it");
            return Held::new(HeldLink::Fds(Vec::new()), Vec::new());
        }
        self.not_pinnable(what);
        Held::new(HeldLink::KProbe(link), Vec::new())
    }

    /// Holds a uprobe attachment, pinned as `what` when it is BPF links.
    pub fn hold_uprobe(&self, what: &str, link: UProbeLink) -> Held {
        if !self.enabled() {
            return Held::new(HeldLink::UProbe(link), Vec::new());
        }
        match link.into_fd_links() {
            Ok(links) => {
                // One link per attach point (one point here, so one link).
                let pins = links
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| match i {
                        0 => self.pin_link(what, l),
                        i => self.pin_link(&format!("{what}-{i}"), l),
                    })
                    .collect();
                Held::new(HeldLink::Fds(links), pins)
            }
            Err(link) => {
                self.not_pinnable(what);
                Held::new(HeldLink::UProbe(link), Vec::new())
            }
        }
    }

    /// Holds a BPF link (raw tracepoint, fentry, fexit, LSM, or a
    /// perf-event link), pinned as `what`.
    pub fn hold_fd(&self, what: &str, link: FdLink) -> Held {
        let pins = self.pin_link(what, &link).into_iter().collect();
        Held::new(HeldLink::Fd(link), pins)
    }

    /// Holds a BPF link made with bpf(2) directly, pinned as `what`.
    pub fn hold_owned(&self, what: &str, link: OwnedFd) -> Held {
        let pins = self.pin_fd(what, link.as_fd()).into_iter().collect();
        Held::new(HeldLink::Owned(link), pins)
    }

    /// Holds a perf event (not a BPF link: it cannot be pinned) that runs
    /// `program`, loaded with bpf(2) directly.
    pub fn hold_perf_event(&self, what: &str, event: OwnedFd, program: OwnedFd) -> Held {
        self.not_pinnable(what);
        Held::new(HeldLink::PerfEvent { event, program }, Vec::new())
    }

    fn pin_link(&self, what: &str, link: &FdLink) -> Option<String> {
        self.state().root.as_ref()?;
        let fd = match link.info() {
            Ok(info) => link_fd_by_id(info.id()),
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        match fd {
            Ok(fd) => self.pin_fd(what, fd.as_fd()),
            Err(e) => {
                tracing::warn!("{what} not pinned ({e}): it stops enforcing if the daemon dies");
                None
            }
        }
    }

    /// Pins the BPF link `fd` as `what` in this generation; returns the
    /// pin's name. A failure is logged, not returned: the link works, it
    /// just does not outlive the process.
    pub fn pin_fd(&self, what: &str, fd: BorrowedFd<'_>) -> Option<String> {
        let dir = self.state().dir()?;
        let name = pin_name(what);
        let path = dir.join(&name);
        let mut result = obj_pin(fd, &path);
        if let Err(e) = &result {
            match e.raw_os_error() {
                // A pin of ours by that name is stale (its link was let go
                // without unpinning): replace it.
                Some(libc::EEXIST) => {
                    let _ = fs::remove_file(&path);
                    result = obj_pin(fd, &path);
                }
                // The folder went away (`tetragond --unload`, or another
                // daemon's start on the same root): make it again.
                Some(libc::ENOENT) => {
                    let _ = fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir);
                    result = obj_pin(fd, &path);
                }
                _ => {}
            }
        }
        match result {
            Ok(()) => {
                tracing::debug!("pinned {}", path.display());
                Some(name)
            }
            Err(e) => {
                tracing::warn!(
                    "{what} not pinned at {} ({e}): it stops enforcing if the daemon dies",
                    path.display()
                );
                None
            }
        }
    }

    fn not_pinnable(&self, what: &str) {
        let mut s = self.state();
        if s.root.is_none() {
            return;
        }
        if !s.perf_warned {
            s.perf_warned = true;
            tracing::warn!(
                "{what} is a perf event, not a BPF link: it cannot be pinned and stops with the daemon"
            );
        } else {
            tracing::debug!("{what} not pinned: a perf event, not a BPF link");
        }
    }

    /// Detaches for good: unpins, then closes the descriptor.
    pub fn release(&self, held: Held) {
        for name in &held.pins {
            self.unpin(name);
        }
        drop(held);
    }

    /// Removes the pin `name` of this generation (gone already is fine).
    pub fn unpin(&self, name: &str) {
        let Some(dir) = self.state().dir() else {
            return;
        };
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("unpinning {}: {e}", path.display()),
        }
    }

    /// This run is ready: its generation takes over (`<N>-loading` becomes
    /// `<N>`) and every other generation under the root is removed, which
    /// detaches the links an earlier run left.
    pub fn commit(&self) {
        let mut s = self.state();
        let Some(root) = s.root.clone() else {
            return;
        };
        if s.this.loading {
            let done = GenName {
                loading: false,
                ..s.this
            };
            let (from, to) = (root.join(s.this.dir_name()), root.join(done.dir_name()));
            match fs::rename(&from, &to) {
                Ok(()) => s.this = done,
                Err(e) => {
                    tracing::warn!("renaming {} to {}: {e}", from.display(), to.display());
                    // Still ours and complete: it just keeps its name.
                }
            }
        }
        let this = s.this;
        drop(s);
        let others: Vec<GenName> = generations(&root)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| g.number != this.number)
            .collect();
        for g in &others {
            let dir = root.join(g.dir_name());
            match fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(
                    "generation {} took over; removed generation {} (its links detached)",
                    this.number,
                    g.number
                ),
                Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
            }
        }
        if others.is_empty() {
            tracing::info!(
                "generation {} pinned in {}",
                this.number,
                root.join(this.dir_name()).display()
            );
        }
    }

    /// A start that failed before [`commit`](Self::commit): removes this
    /// run's incomplete generation (an earlier complete one stays).
    pub fn abandon(&self) {
        let s = self.state();
        if let (true, Some(dir)) = (s.this.loading, s.dir()) {
            drop(s);
            let _ = fs::remove_dir_all(dir);
        }
    }

    /// Removes every generation under the root (this run's too) and the
    /// root when empty: links this process still holds stay attached until
    /// it closes them, everything else is detached now.
    pub fn unload(&self) -> io::Result<usize> {
        let Some(root) = self.state().root.clone() else {
            return Ok(0);
        };
        unload(&root)
    }
}

/// `tetragond --unload`: removes every generation pinned under `root` and
/// `root` itself when that leaves it empty. Returns how many generations
/// were removed. Only entries named like generations are touched.
pub fn unload(root: &Path) -> io::Result<usize> {
    let gens = match generations(root) {
        Ok(g) => g,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    let mut first_error = None;
    for g in gens {
        match fs::remove_dir_all(root.join(g.dir_name())) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("removing {}: {e}", root.join(g.dir_name()).display()),
                ));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    // Only when empty (rmdir): anything else there is not ours to remove.
    let _ = fs::remove_dir(root);
    Ok(removed)
}

/// Generation folders under `root`.
pub fn generations(root: &Path) -> io::Result<Vec<GenName>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(g) = entry.file_name().to_str().and_then(GenName::parse) {
            out.push(g);
        }
    }
    out.sort_by_key(|g| (g.number, g.loading));
    Ok(out)
}

/// Pin files of every generation under `root`, as `<generation>/<name>`.
pub fn pinned(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for g in generations(root)? {
        for entry in fs::read_dir(root.join(g.dir_name()))? {
            out.push(format!(
                "{}/{}",
                g.dir_name(),
                entry?.file_name().to_string_lossy()
            ));
        }
    }
    Ok(out)
}

fn on_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs fills the zeroed struct; the path is NUL terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above: a NUL-terminated path and a struct statfs to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long == BPF_FS_MAGIC)
}

/// Whether a link id (its Debug form: aya 0.16 does not say otherwise)
/// names a BPF link rather than a perf event. Converting a perf-event
/// link to an [`FdLink`] would detach it, so this is asked first.
fn fd_backed(id: &impl std::fmt::Debug) -> bool {
    format!("{id:?}").contains("FdLinkId")
}

/// A second descriptor of link `id`, to pin without giving up the first.
fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // union bpf_attr for BPF_LINK_GET_FD_BY_ID: link_id, next_id, open_flags.
    let mut attr = [0u32; 4];
    attr[0] = id;
    bpf(
        BPF_LINK_GET_FD_BY_ID,
        attr.as_mut_ptr().cast(),
        std::mem::size_of_val(&attr),
    )
}

fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // union bpf_attr for BPF_OBJ_PIN: pathname (u64), bpf_fd, file_flags,
    // path_fd (u32 each).
    #[repr(C)]
    struct ObjAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    // The path outlives the call.
    bpf_call(
        BPF_OBJ_PIN,
        (&mut attr as *mut ObjAttr).cast(),
        std::mem::size_of::<ObjAttr>(),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(number: u64, loading: bool) -> GenName {
        GenName { number, loading }
    }

    #[test]
    fn generation_names() {
        assert_eq!(GenName::parse("7"), Some(g(7, false)));
        assert_eq!(GenName::parse("12-loading"), Some(g(12, true)));
        for bad in ["", "-loading", "x", "7x", "7-loadin", "maps.debug", "+3"] {
            assert_eq!(GenName::parse(bad), None, "{bad}");
        }
        assert_eq!(g(12, true).dir_name(), "12-loading");
        assert_eq!(g(3, false).dir_name(), "3");
    }

    #[test]
    fn a_start_keeps_only_the_newest_complete_generation() {
        // Nothing there: generation 1.
        assert_eq!(plan(&[]), (None, vec![], 1));
        // A crash loop: 5 complete, then 6 and 7 never got ready. 5 keeps
        // enforcing, the partial ones go, the new one is 8.
        let (keep, remove, next) = plan(&[g(5, false), g(6, true), g(7, true)]);
        assert_eq!(keep, Some(g(5, false)));
        assert_eq!(remove, vec![g(6, true), g(7, true)]);
        assert_eq!(next, 8);
        // Two complete ones (a crash between commit and removal).
        let (keep, remove, _) = plan(&[g(2, false), g(3, false)]);
        assert_eq!(keep, Some(g(3, false)));
        assert_eq!(remove, vec![g(2, false)]);
        // Only an incomplete one: nothing is kept.
        let (keep, remove, next) = plan(&[g(4, true)]);
        assert_eq!((keep, remove, next), (None, vec![g(4, true)], 5));
    }

    #[test]
    fn pin_names_are_valid_in_bpffs() {
        assert_eq!(
            pin_name("tp-raw_syscalls-sys_enter"),
            "tp-raw_syscalls-sys_enter"
        );
        assert_eq!(
            pin_name("uprobe-3-/usr/lib/libc.so.6:readline"),
            "uprobe-3-_usr_lib_libc_so_6:readline"
        );
        assert_eq!(pin_name(&"x".repeat(300)).len(), NAME_MAX);
    }

    #[test]
    fn perf_event_links_are_told_apart() {
        assert!(fd_backed(&"TracePointLinkId(FdLinkId(FdLinkId(7)))"));
        assert!(!fd_backed(&"TracePointLinkId(PerfLinkId(PerfLinkId(7)))"));
    }
}
