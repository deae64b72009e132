//! Programs bound to kernel functions and LSM hooks. Kprobes are served by
//! one program, `kprobe_any`, attached to every target: it finds its site
//! by the probed address, which user space lists from /proc/kallsyms, so
//! there is no count of them but the site range. Kretprobes, and kprobes
//! on a name several functions share (no one address), are served by
//! `kprobe_by_cookie`, loaded once and linked to each target with its site
//! as the cookie where perf-event links carry one (Linux 5.15), or before
//! that by a stub of their own entering `kprobe_from_stub` (`stubs.rs`).
//! Where trampoline links carry a BPF cookie (Linux 5.19), LSM hooks,
//! fentry and fexit are served by `lsm_any`, `fentry_any` and `fexit_any`:
//! each loaded once per target, its link's cookie naming the site. On
//! older kernels trampolines and LSM hooks come in numbered slots
//! (`fentry_0`, `lsm_3`, ...): the kernel refuses tail calls between such
//! programs of different targets, so no stub can serve them. A target in
//! use holds a site; policies on the same target share it, listed under
//! its site like tracepoint hooks.

use std::{cell::OnceCell, collections::HashMap, sync::Arc};

use aya::{
    maps::HashMap as BpfHashMap,
    programs::{
        links::FdLink, BtfTracePoint, FEntry, FExit, KProbe, Lsm, ProgramError, RawTracePoint,
    },
    Btf, Ebpf,
};
use tetragond_ebpf::{site, KPROBE_SITE_ENTRIES};

use super::{
    bpf_syscall::{link_with_cookie, TrampolineAttach},
    object::{map_err, map_full},
    pin::{Held, Pins},
    stubs::{self, StubKind},
};
use crate::{
    compile::{FunctionFamily, FunctionTarget},
    error::SensorError,
    kernel_info::{btf::KernelBtf, kallsyms::Kallsyms},
};

/// The program that serves every kprobe it can find the address of.
const KPROBE_ANY: &str = "kprobe_any";
/// The program that serves kretprobes and kprobes without one address,
/// by the cookie of its link.
const KPROBE_BY_COOKIE: &str = "kprobe_by_cookie";
/// `endbr64`: on kernels built with IBT a probe on a function's entry
/// sits past it.
const ENDBR_LEN: u64 = 4;

struct Bound {
    site: u32,
    program: String,
    /// `KPROBE_SITES` keys written for it (`kprobe_any` only).
    addresses: Vec<u64>,
    users: usize,
    /// Taken from aya and pinned (see `pin.rs`): released on detach.
    link: Held,
    /// With an fentry program on a `security_*` function: the fmod_ret
    /// program that returns the Override it decided (closed on drop), and
    /// the name of its link's pin.
    modify_return: Option<ModifyReturnHeld>,
    /// An LSM hook's IMA companion (`policy::ima`), linked just
    /// before the hook's program so that it runs right after it; released
    /// after it.
    companion: Option<Held>,
    /// Served by a numbered slot program, unbound when the target goes
    /// (trampolines and LSM hooks: unloaded, so the slot can serve
    /// another); the `*_any` programs only drop their link.
    slot: bool,
}

impl Bound {
    /// A target served by a program of many targets (`kprobe_any`,
    /// `kprobe_by_cookie`, `kprobe_from_stub`) through `link` alone.
    fn shared(site: u32, program: &str, addresses: Vec<u64>, link: Held) -> Bound {
        Bound {
            site,
            program: program.to_string(),
            addresses,
            users: 1,
            link,
            modify_return: None,
            companion: None,
            slot: false,
        }
    }
}

/// An fmod_ret program (closed on drop) and the name of its link's pin.
type ModifyReturnHeld = (super::fmod_ret::ModifyReturn, Option<String>);

/// A hook's own program's link, and its fmod_ret program if it has one.
type LinkedHook = (Held, Option<ModifyReturnHeld>);

pub struct FunctionAttachments {
    bound: HashMap<(FunctionFamily, String), Bound>,
    /// The kernel's BTF as aya reads it, parsed on first use (trampoline
    /// programs are loaded against it).
    btf: Option<Btf>,
    /// Our parse of it (the daemon's, shared), for fmod_ret target ids.
    kernel_btf: Option<Arc<KernelBtf>>,
    /// Where links are pinned.
    pins: Pins,
    /// Function addresses, read at the first kprobe (None: unreadable).
    kallsyms: OnceCell<Option<Kallsyms>>,
    /// Trampoline and LSM links carry a BPF cookie here.
    cookies: bool,
    /// Raw tracepoint links carry a BPF cookie here.
    raw_tracepoint_cookies: bool,
    /// LSM hooks that may hash their file get an IMA companion (the
    /// kernel can run it: `Kernel::probe_programs`).
    ima: bool,
    /// Perf-event links (kprobes) carry a BPF cookie here.
    perf_cookies: bool,
    /// Kinds whose stubs' target is loaded and in its program array
    /// (their stubs may be attached).
    stub_targets_ready: Vec<StubKind>,
}

/// Trampoline and LSM links carry a BPF cookie (Linux 5.19): the kernel's
/// `struct bpf_tramp_link` has one.
fn trampoline_cookies(btf: Option<&KernelBtf>) -> bool {
    btf.is_some_and(|b| b.member_offset("bpf_tramp_link", &["cookie"]).is_ok())
}

/// The program serving every target of `family` by cookie, and how its
/// link is made.
fn cookie_program(family: FunctionFamily) -> Option<(&'static str, TrampolineAttach)> {
    match family {
        FunctionFamily::Lsm => Some(("lsm_any", TrampolineAttach::Lsm)),
        FunctionFamily::Fentry => Some(("fentry_any", TrampolineAttach::Fentry)),
        FunctionFamily::Fexit => Some(("fexit_any", TrampolineAttach::Fexit)),
        FunctionFamily::RawTracepoint => Some(("tp_btf_any", TrampolineAttach::RawTracepoint)),
        FunctionFamily::Kprobe | FunctionFamily::Kretprobe => None,
    }
}

/// Raw tracepoint links carry a BPF cookie (Linux 6.10): the kernel's
/// `struct bpf_raw_tp_link` has one.
fn raw_tracepoint_cookies(btf: Option<&KernelBtf>) -> bool {
    btf.is_some_and(|b| b.member_offset("bpf_raw_tp_link", &["cookie"]).is_ok())
}

/// Functions whose return value an fmod_ret program may replace (the
/// kernel allows `security_*` and its error-injection list; we use the
/// former).
fn modifiable(target: &FunctionTarget) -> bool {
    target.family == FunctionFamily::Fentry && target.name.starts_with("security_")
}

/// (first site, slots, program name prefix) of the families served by
/// numbered programs where links carry no cookie.
fn family_slots(family: FunctionFamily) -> Option<(u32, u32, &'static str)> {
    match family {
        FunctionFamily::Fentry => Some((site::FENTRY_BASE, site::FENTRY_SLOTS, "fentry")),
        FunctionFamily::Fexit => Some((site::FEXIT_BASE, site::FEXIT_SLOTS, "fexit")),
        FunctionFamily::Lsm => Some((site::LSM_BASE, site::LSM_SLOTS, "lsm")),
        FunctionFamily::RawTracepoint | FunctionFamily::Kprobe | FunctionFamily::Kretprobe => None,
    }
}

fn describe(target: &FunctionTarget) -> String {
    match target.family {
        FunctionFamily::Lsm => format!("LSM hook {}", target.name),
        FunctionFamily::Kprobe => format!("kprobe {}", target.name),
        FunctionFamily::Kretprobe => format!("kretprobe {}", target.name),
        FunctionFamily::Fentry => format!("fentry {}", target.name),
        FunctionFamily::Fexit => format!("fexit {}", target.name),
        FunctionFamily::RawTracepoint => format!("raw tracepoint {}", target.name),
    }
}

/// The error of attaching `target`, given the kernel's or aya's message.
fn attach_error(target: &FunctionTarget) -> impl Fn(String) -> SensorError + Copy + '_ {
    move |message| SensorError::Attach {
        tracepoint: describe(target),
        message,
    }
}

/// The error with its cause chain: aya's top-level messages alone often
/// omit the kernel's reason.
fn chain(e: &ProgramError) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

impl FunctionAttachments {
    pub fn new(kernel_btf: Option<Arc<KernelBtf>>, pins: Pins) -> Self {
        let cookies = trampoline_cookies(kernel_btf.as_deref());
        let raw_tracepoint_cookies = raw_tracepoint_cookies(kernel_btf.as_deref());
        Self {
            bound: HashMap::new(),
            btf: None,
            kernel_btf,
            pins,
            kallsyms: OnceCell::new(),
            cookies,
            raw_tracepoint_cookies,
            ima: false,
            perf_cookies: false,
            stub_targets_ready: Vec::new(),
        }
    }

    /// Serves kretprobes (and kprobes without one address) by
    /// `kprobe_by_cookie` (the kernel has `bpf_get_attach_cookie`, Linux
    /// 5.15), not by stubs.
    pub fn with_perf_cookies(mut self, perf_cookies: bool) -> Self {
        self.perf_cookies = perf_cookies;
        self
    }

    /// Gives LSM hooks that may hash their file an IMA companion from now
    /// on (the probe found the kernel runs it).
    pub fn serve_ima(&mut self, ima: bool) {
        self.ima = ima;
    }

    /// The first of the `count` sites from `base` no bound target holds.
    fn free_site(&self, base: u32, count: u32) -> Option<u32> {
        (base..base + count).find(|s| !self.bound.values().any(|b| b.site == *s))
    }

    /// LSM hooks, fentry and fexit are served by one program each (links
    /// with cookies), not by slots.
    pub fn trampoline_cookies(&self) -> bool {
        self.cookies
    }

    /// Raw tracepoints are served by one program (links with cookies).
    pub fn raw_tracepoint_cookies(&self) -> bool {
        self.raw_tracepoint_cookies
    }

    /// Binds a program slot to `target` (or shares the one bound to it);
    /// `decision_map` is `OVERRIDE_DECISION`, for fmod_ret programs.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
        decision_map: std::os::fd::RawFd,
    ) -> Result<u32, SensorError> {
        let key = (target.family, target.name.clone());
        if let Some(b) = self.bound.get_mut(&key) {
            b.users += 1;
            return Ok(b.site);
        }
        if target.family == FunctionFamily::Kprobe {
            let address = self
                .kallsyms
                .get_or_init(Kallsyms::read)
                .as_ref()
                .and_then(|k| k.unique(&target.name));
            if let Some(address) = address {
                return self.attach_any_kprobe(ebpf, target, address);
            }
        }
        if matches!(
            target.family,
            FunctionFamily::Kprobe | FunctionFamily::Kretprobe
        ) {
            return self.attach_kprobe_by_site(ebpf, target);
        }
        if target.family == FunctionFamily::RawTracepoint && !self.raw_tracepoint_cookies {
            return self.attach_raw_tracepoint_by_stub(ebpf, target);
        }
        let cookies = match target.family {
            FunctionFamily::RawTracepoint => self.raw_tracepoint_cookies,
            _ => self.cookies,
        };
        if let Some(program) = cookie_program(target.family).filter(|_| cookies) {
            return self.attach_by_cookie(ebpf, target, program, decision_map);
        }
        let (base, slots, prefix) =
            family_slots(target.family).ok_or_else(|| SensorError::Attach {
                tracepoint: describe(target),
                message: "no numbered programs serve it".into(),
            })?;
        let slot = self
            .free_site(base, slots)
            .map(|site| site - base)
            .ok_or_else(|| {
                SensorError::Full(format!(
                    "at most {slots} distinct {prefix} targets can be hooked at once"
                ))
            })?;
        let program = format!("{prefix}_{slot}");
        let attach_err = attach_error(target);
        let what = format!("{program}-{}", target.name);
        let link = match self.bind(ebpf, &program, target).map_err(attach_err)? {
            Taken::Kprobe(l) => self.pins.hold_kprobe(&what, l),
            Taken::Fd(l) => self.pins.hold_fd(&what, l),
        };
        let modify_return = match self.modify_return_for(target, base + slot, decision_map) {
            Ok(m) => m,
            Err(message) => {
                unbind(ebpf, &self.pins, &program, target, link);
                return Err(attach_err(message));
            }
        };
        tracing::info!(
            "{} served by program {program}{}",
            describe(target),
            if modify_return.is_some() {
                " and an fmod_ret program"
            } else {
                ""
            }
        );
        self.bound.insert(
            key,
            Bound {
                site: base + slot,
                program,
                addresses: vec![],
                users: 1,
                link,
                modify_return,
                companion: None,
                slot: true,
            },
        );
        Ok(base + slot)
    }

    /// Serves kretprobe (or kprobe) `target` with a site of its own: by
    /// `kprobe_by_cookie` (loaded at its first use), linked with the site
    /// as the cookie, or where links carry none, by a stub of its own
    /// entering `kprobe_from_stub` with it.
    fn attach_kprobe_by_site(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
    ) -> Result<u32, SensorError> {
        let attach_err = attach_error(target);
        let (site, name) = self.site_and_name(target)?;
        let ret = target.family == FunctionFamily::Kretprobe;
        // Pinned by kind and function: a function's entry and return
        // both served this way must not share a pin.
        let what = format!(
            "{}-{}",
            if ret { "kretprobe" } else { "kprobe" },
            target.name
        );
        let (link, program) = if self.perf_cookies {
            let p = loaded_kprobe(ebpf, KPROBE_BY_COOKIE).map_err(attach_err)?;
            let prog_fd = p.fd().map_err(|e| attach_err(chain(&e)))?;
            let link = super::bpf_syscall::kprobe_link(
                std::os::fd::AsFd::as_fd(prog_fd),
                &name,
                ret,
                u64::from(site),
            )
            .map_err(|e| attach_err(format!("{e}{}", probe_hint(&target.name))))?;
            (self.pins.hold_owned(&what, link), KPROBE_BY_COOKIE)
        } else {
            self.ready_stub_target(ebpf, StubKind::Kprobe)?;
            let stub = stubs::load_for(ebpf, StubKind::Kprobe, site)?;
            let event =
                super::bpf_syscall::kprobe_perf_event(std::os::fd::AsFd::as_fd(&stub), &name, ret)
                    .map_err(|e| attach_err(format!("{e}{}", probe_hint(&target.name))))?;
            (
                self.pins.hold_perf_event(&what, event, stub),
                StubKind::Kprobe.target_program(),
            )
        };
        let through = if self.perf_cookies {
            ""
        } else {
            ", through a stub of its own"
        };
        Ok(self.bind_shared(target, site, program, through, link))
    }

    /// Records `target` as served by `program` (of many targets) at
    /// `site` through `link`, saying so (`through` ends the site's note).
    fn bind_shared(
        &mut self,
        target: &FunctionTarget,
        site: u32,
        program: &str,
        through: &str,
        link: Held,
    ) -> u32 {
        tracing::info!(
            "{} served by program {program} (site {site}{through})",
            describe(target)
        );
        self.bound.insert(
            (target.family, target.name.clone()),
            Bound::shared(site, program, vec![], link),
        );
        site
    }

    /// Loads `kind`'s target program (`kprobe_from_stub`,
    /// `raw_tp_from_stub`) and puts it in its program array, once: before
    /// any stub of `kind` is attached.
    fn ready_stub_target(&mut self, ebpf: &mut Ebpf, kind: StubKind) -> Result<(), SensorError> {
        if self.stub_targets_ready.contains(&kind) {
            return Ok(());
        }
        let program = kind.target_program();
        let fd = match kind {
            StubKind::Kprobe => loaded_kprobe(ebpf, program).and_then(|p| owned_fd(p.fd())),
            StubKind::RawTracepoint => {
                loaded_raw_tracepoint(ebpf, program).and_then(|p| owned_fd(p.fd()))
            }
            StubKind::Tracepoint => Err("tracepoint stubs are the kernel sensor's".into()),
        }
        .map_err(SensorError::Load)?;
        stubs::set_target(ebpf, kind, fd)?;
        self.stub_targets_ready.push(kind);
        Ok(())
    }

    /// Serves raw tracepoint `target` where its links carry no cookie
    /// (before 6.10) by a stub of its own entering `raw_tp_from_stub`
    /// with a site of its own.
    fn attach_raw_tracepoint_by_stub(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
    ) -> Result<u32, SensorError> {
        let attach_err = attach_error(target);
        let (site, name) = self.site_and_name(target)?;
        self.ready_stub_target(ebpf, StubKind::RawTracepoint)?;
        let stub = stubs::load_for(ebpf, StubKind::RawTracepoint, site)?;
        let link = super::bpf_syscall::raw_tracepoint_link(std::os::fd::AsFd::as_fd(&stub), &name)
            .map_err(|e| {
                attach_err(format!(
                    "attaching its stub: {e} (is it a tracepoint of this kernel?)"
                ))
            })?;
        // The link holds the stub; its descriptor here can go.
        drop(stub);
        let program = StubKind::RawTracepoint.target_program();
        let link = self
            .pins
            .hold_owned(&format!("raw-tp-{}", target.name), link);
        Ok(self.bind_shared(target, site, program, ", through a stub of its own", link))
    }

    /// A site for `target` (served by cookie or stub), and its name as
    /// the kernel takes it.
    fn site_and_name(
        &self,
        target: &FunctionTarget,
    ) -> Result<(u32, std::ffi::CString), SensorError> {
        let name = std::ffi::CString::new(target.name.as_str())
            .map_err(|_| attach_error(target)("a name with a NUL byte".into()))?;
        Ok((self.free_cookie_site()?, name))
    }

    /// A site for a target whose link's cookie names it.
    fn free_cookie_site(&self) -> Result<u32, SensorError> {
        self.free_site(site::COOKIE_BASE, site::COOKIE_SLOTS)
            .ok_or_else(|| {
                SensorError::Full(format!(
                    "at most {} distinct LSM hooks, fentry, fexit, kretprobe and raw tracepoint targets (and kprobes on shared names) can be hooked at once",
                    site::COOKIE_SLOTS
                ))
            })
    }

    /// Serves `target` (an LSM hook, fentry or fexit) by `program`, loaded
    /// for it alone and linked with its site as the cookie. aya then lets
    /// go of the program (the link holds it), so the next target can load
    /// it again.
    fn attach_by_cookie(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
        (program, attach): (&'static str, TrampolineAttach),
        decision_map: std::os::fd::RawFd,
    ) -> Result<u32, SensorError> {
        let site = self.free_cookie_site()?;
        let attach_err = attach_error(target);
        let companion = self.ima_companion(ebpf, target).map_err(attach_err)?;
        let (link, modify_return) =
            match self.link_hook(ebpf, target, (program, attach), site, decision_map) {
                Ok(linked) => linked,
                Err(message) => {
                    if let Some(c) = companion {
                        self.pins.release(c);
                    }
                    return Err(attach_err(message));
                }
            };
        tracing::info!(
            "{} served by program {program} (site {site}){}{}",
            describe(target),
            if modify_return.is_some() {
                " and an fmod_ret program"
            } else {
                ""
            },
            if companion.is_some() {
                " and an IMA companion"
            } else {
                ""
            }
        );
        self.bound.insert(
            (target.family, target.name.clone()),
            Bound {
                site,
                program: program.to_string(),
                addresses: vec![],
                users: 1,
                link,
                modify_return,
                companion,
                slot: false,
            },
        );
        Ok(site)
    }

    /// `program` linked to `target` with `site` as its cookie (pinned),
    /// with the fmod_ret program an Override there needs; on failure
    /// neither stays.
    fn link_hook(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
        (program, attach): (&'static str, TrampolineAttach),
        site: u32,
        decision_map: std::os::fd::RawFd,
    ) -> Result<LinkedHook, String> {
        let link = self.load_and_link(ebpf, program, target, attach, site)?;
        let link = self
            .pins
            .hold_owned(&format!("{program}-{}", target.name), link);
        match self.modify_return_for(target, site, decision_map) {
            Ok(modify_return) => Ok((link, modify_return)),
            Err(message) => {
                self.pins.release(link);
                Err(message)
            }
        }
    }

    /// Loads `program` for `target`, links it with `site` as its cookie,
    /// and unloads it from aya (the link keeps the kernel's program).
    fn load_and_link(
        &mut self,
        ebpf: &mut Ebpf,
        program: &str,
        target: &FunctionTarget,
        attach: TrampolineAttach,
        site: u32,
    ) -> Result<std::os::fd::OwnedFd, String> {
        let btf = self.aya_btf()?.clone();
        let name = target.name.as_str();
        let prog = ebpf
            .program_mut(program)
            .ok_or_else(|| format!("program {program} missing from the BPF object"))?;
        macro_rules! load_link {
            ($ty:ty, $hint:expr) => {{
                let p: &mut $ty = prog.try_into().map_err(|e| chain(&e))?;
                p.load(name, &btf)
                    .map_err(|e| format!("{}{}", chain(&e), $hint))?;
                super::object::log_verified(program, p.info().ok());
                let link = p.fd().map_err(|e| chain(&e)).and_then(|fd| {
                    link_with_cookie(std::os::fd::AsFd::as_fd(fd), attach, u64::from(site))
                        .map_err(|e| format!("linking {program} to {name}: {e}"))
                });
                // Unloaded either way: linked, the kernel keeps it.
                if let Err(e) = p.unload() {
                    tracing::warn!("unloading {program} after {name}: {}", chain(&e));
                }
                link
            }};
        }
        match target.family {
            FunctionFamily::Lsm => {
                load_link!(Lsm, format!(" (is {name} an LSM hook of this kernel?)"))
            }
            FunctionFamily::Fentry => load_link!(FEntry, String::new()),
            FunctionFamily::Fexit => load_link!(FExit, String::new()),
            FunctionFamily::RawTracepoint => load_link!(
                BtfTracePoint,
                format!(" (is {name} a tracepoint of this kernel?)")
            ),
            FunctionFamily::Kprobe | FunctionFamily::Kretprobe => {
                Err(format!("{program} cannot serve {}", describe(target)))
            }
        }
    }

    /// For an LSM hook whose file a policy may hash, where the kernel can:
    /// its IMA companion, linked (and pinned) before the hook's own
    /// program, so that the kernel runs it right after that one (a hook's
    /// programs run newest first). Always there on such a hook, whatever
    /// its policies ask: a companion added under a program already linked
    /// would run before it.
    fn ima_companion(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
    ) -> Result<Option<Held>, String> {
        let subject = match target.family {
            FunctionFamily::Lsm if self.ima => crate::policy::ima::subject(&target.name),
            _ => None,
        };
        let Some(subject) = subject else {
            return Ok(None);
        };
        let program = subject.program();
        let link = self.load_and_link(ebpf, program, target, TrampolineAttach::Lsm, 0)?;
        Ok(Some(
            self.pins
                .hold_owned(&format!("{program}-{}", target.name), link),
        ))
    }

    /// For an fentry on a `security_*` function: the fmod_ret program that
    /// returns the Override it decides, attached and pinned.
    fn modify_return_for(
        &mut self,
        target: &FunctionTarget,
        site: u32,
        decision_map: std::os::fd::RawFd,
    ) -> Result<Option<ModifyReturnHeld>, String> {
        if !modifiable(target) {
            return Ok(None);
        }
        let m = self.modify_return(target, site, decision_map)?;
        let pin = self
            .pins
            .pin_fd(&format!("fmod_ret-{}", target.name), m.link());
        Ok(Some((m, pin)))
    }

    /// Serves a kprobe on the function at `address` by `kprobe_any`: a
    /// site of its own, listed under the addresses its probe can sit at.
    fn attach_any_kprobe(
        &mut self,
        ebpf: &mut Ebpf,
        target: &FunctionTarget,
        address: u64,
    ) -> Result<u32, SensorError> {
        let site = self
            .free_site(site::KPROBE_ANY_BASE, site::KPROBE_ANY_SLOTS)
            .ok_or_else(|| {
                SensorError::Full(format!(
                    "at most {} distinct kprobe targets can be hooked at once",
                    site::KPROBE_ANY_SLOTS
                ))
            })?;
        let addresses = vec![address, address + ENDBR_LEN];
        list_addresses(ebpf, &addresses, site)?;
        let link = match self.bind(ebpf, KPROBE_ANY, target) {
            Ok(Taken::Kprobe(l)) => self
                .pins
                .hold_kprobe(&format!("{KPROBE_ANY}-{}", target.name), l),
            Ok(Taken::Fd(l)) => self
                .pins
                .hold_fd(&format!("{KPROBE_ANY}-{}", target.name), l),
            Err(message) => {
                forget_addresses(ebpf, &addresses);
                return Err(SensorError::Attach {
                    tracepoint: describe(target),
                    message,
                });
            }
        };
        let mut addresses = addresses;
        let confirmed = match confirm_address(ebpf, &link, &mut addresses, site) {
            Ok(confirmed) => confirmed,
            Err(e) => {
                self.pins.release(link);
                forget_addresses(ebpf, &addresses);
                return Err(e);
            }
        };
        tracing::info!(
            "{} served by program {KPROBE_ANY} (site {site}; {})",
            describe(target),
            match confirmed {
                Some(at) => format!("the kernel says the probe is at {at:#x}"),
                None => "the kernel does not say where the probe is".into(),
            }
        );
        self.bound.insert(
            (target.family, target.name.clone()),
            Bound::shared(site, KPROBE_ANY, addresses, link),
        );
        Ok(site)
    }

    /// aya's parse of the kernel's BTF, made once.
    pub(super) fn aya_btf(&mut self) -> Result<&Btf, String> {
        if self.btf.is_none() {
            self.btf = Some(Btf::from_sys_fs().map_err(|e| format!("reading kernel BTF: {e}"))?);
        }
        self.btf.as_ref().ok_or_else(|| "no kernel BTF".to_string())
    }

    /// Loads (for trampolines: against the target) and attaches `program`;
    /// returns the link, taken from aya (the caller holds it).
    fn bind(
        &mut self,
        ebpf: &mut Ebpf,
        program: &str,
        target: &FunctionTarget,
    ) -> Result<Taken, String> {
        let name = target.name.as_str();
        let btf = match target.family {
            FunctionFamily::Kprobe | FunctionFamily::Kretprobe => None,
            _ => Some(self.aya_btf()?.clone()),
        };
        let prog = ebpf
            .program_mut(program)
            .ok_or_else(|| format!("program {program} missing from the BPF object"))?;
        // Trampoline and BTF tracepoint programs: loaded against the target.
        macro_rules! load_attach {
            ($ty:ty, $hint:expr) => {{
                let btf = btf.as_ref().ok_or("no kernel BTF")?;
                let p: &mut $ty = prog.try_into().map_err(|e| chain(&e))?;
                p.load(name, btf)
                    .map_err(|e| format!("{}{}", chain(&e), $hint))?;
                super::object::log_verified(program, p.info().ok());
                p.attach()
                    .and_then(|id| p.take_link(id))
                    .map(|l| Taken::Fd(l.into()))
                    .map_err(|e| {
                        let _ = p.unload();
                        chain(&e)
                    })
            }};
        }
        match target.family {
            // `kprobe_any`: kretprobes and raw tracepoints go by cookie or
            // stub (`attach_kprobe_by_site`, `attach_raw_tracepoint_by_stub`).
            FunctionFamily::Kprobe => {
                let p = loaded_kprobe(ebpf, program)?;
                let id = p
                    .attach(name, 0)
                    .map_err(|e| format!("{}{}", chain(&e), probe_hint(name)))?;
                p.take_link(id).map(Taken::Kprobe).map_err(|e| chain(&e))
            }
            FunctionFamily::Fentry => load_attach!(FEntry, ""),
            FunctionFamily::Fexit => load_attach!(FExit, ""),
            FunctionFamily::Lsm => load_attach!(Lsm, " (is it an LSM hook of this kernel?)"),
            FunctionFamily::Kretprobe | FunctionFamily::RawTracepoint => Err(format!(
                "{program} cannot serve {}: it is served by cookie or stub",
                describe(target)
            )),
        }
    }

    fn modify_return(
        &mut self,
        target: &FunctionTarget,
        site: u32,
        decision_map: std::os::fd::RawFd,
    ) -> Result<super::fmod_ret::ModifyReturn, String> {
        let btf = self
            .kernel_btf
            .as_ref()
            .ok_or("the kernel's BTF is unreadable")?;
        let id = btf.function_id(&target.name).map_err(|e| e.to_string())?;
        super::fmod_ret::attach(id, site, decision_map)
    }

    pub fn detach(&mut self, ebpf: &mut Ebpf, target: &FunctionTarget) {
        let key = (target.family, target.name.clone());
        let Some(b) = self.bound.get_mut(&key) else {
            return;
        };
        b.users -= 1;
        if b.users > 0 {
            return;
        }
        let Some(b) = self.bound.remove(&key) else {
            return;
        };
        // The fmod_ret program goes first, then its fentry.
        let Bound {
            link,
            modify_return,
            companion,
            program,
            addresses,
            slot,
            ..
        } = b;
        if let Some((m, pin)) = modify_return {
            if let Some(pin) = pin {
                self.pins.unpin(&pin);
            }
            drop(m);
        }
        if slot {
            unbind(ebpf, &self.pins, &program, target, link);
        } else {
            self.pins.release(link);
        }
        // After the hook's program: it may have left the companion a
        // verdict to return.
        if let Some(c) = companion {
            self.pins.release(c);
        }
        forget_addresses(ebpf, &addresses);
    }
}

/// `fn $name(ebpf, program)`: program `program` of the object as a `$ty`
/// (a type whose `load` takes nothing), loaded (verified once, at its
/// first use; each attachment reuses it).
macro_rules! loaded_program {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        fn $name<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut $ty, String> {
            let p: &mut $ty = ebpf
                .program_mut(program)
                .ok_or_else(|| format!("program {program} missing from the BPF object"))?
                .try_into()
                .map_err(|e| chain(&e))?;
            if p.fd().is_err() {
                p.load().map_err(|e| format!("{program}: {}", chain(&e)))?;
                super::object::log_verified(program, p.info().ok());
            }
            Ok(p)
        }
    };
}

loaded_program!(
    /// Kprobe program `program` of the object, loaded.
    loaded_kprobe,
    KProbe
);
loaded_program!(
    /// Raw tracepoint program `program` of the object (plain, not
    /// BTF-typed), loaded.
    loaded_raw_tracepoint,
    RawTracePoint
);

/// A descriptor of its own of a loaded program (out of aya's borrow).
fn owned_fd(
    fd: Result<&aya::programs::ProgramFd, ProgramError>,
) -> Result<aya::programs::ProgramFd, String> {
    fd.map_err(|e| chain(&e))?
        .try_clone()
        .map_err(|e| e.to_string())
}

/// What to check when a kprobe on `function` cannot be made.
fn probe_hint(function: &str) -> String {
    format!(" (is {function} a kernel function that can be probed? see /sys/kernel/tracing/available_filter_functions)")
}

fn kprobe_sites(
    ebpf: &mut Ebpf,
) -> Result<BpfHashMap<&mut aya::maps::MapData, u64, u32>, SensorError> {
    let map = ebpf.map_mut("KPROBE_SITES").ok_or(SensorError::Map {
        map: "KPROBE_SITES",
        message: "missing from the BPF object".into(),
    })?;
    BpfHashMap::try_from(map).map_err(map_err("KPROBE_SITES"))
}

/// Lists `addresses` under `site` in `KPROBE_SITES`, all or none.
fn list_addresses(ebpf: &mut Ebpf, addresses: &[u64], site: u32) -> Result<(), SensorError> {
    let mut sites = kprobe_sites(ebpf)?;
    for (i, a) in addresses.iter().enumerate() {
        if let Err(e) = sites.insert(a, &site, 0) {
            for written in &addresses[..i] {
                let _ = sites.remove(written);
            }
            return Err(map_full(
                "KPROBE_SITES",
                KPROBE_SITE_ENTRIES,
                "kprobe addresses",
            )(e));
        }
    }
    Ok(())
}

/// Lists the address the kernel says it put the probe at (Linux 6.6 on),
/// when it is not one of `addresses` already: `kprobe_any` then finds its
/// site wherever the probe sits. Older kernels do not say; there the entry
/// and the byte past `endbr64` are where x86-64 puts it. The address the
/// kernel gave, if it gave one.
fn confirm_address(
    ebpf: &mut Ebpf,
    link: &Held,
    addresses: &mut Vec<u64>,
    site: u32,
) -> Result<Option<u64>, SensorError> {
    let Some(fd) = link.link_fd() else {
        return Ok(None);
    };
    let probed = match super::bpf_syscall::kprobe_address(std::os::fd::AsFd::as_fd(&fd)) {
        Ok(Some(probed)) => probed,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::debug!("kprobe link info: {e}");
            return Ok(None);
        }
    };
    if !addresses.contains(&probed) {
        tracing::info!(
            "the kernel put a kprobe at {probed:#x}, not where expected: listed there too"
        );
        list_addresses(ebpf, &[probed], site)?;
        addresses.push(probed);
    }
    Ok(Some(probed))
}

/// Takes `addresses` out of `KPROBE_SITES` (after the probe is detached).
fn forget_addresses(ebpf: &mut Ebpf, addresses: &[u64]) {
    if addresses.is_empty() {
        return;
    }
    if let Ok(mut sites) = kprobe_sites(ebpf) {
        for a in addresses {
            let _ = sites.remove(a);
        }
    }
}

/// A link just taken from aya, before it is held (and pinned).
enum Taken {
    Kprobe(aya::programs::kprobe::KProbeLink),
    Fd(FdLink),
}

/// Detaches `program` from `target` (unpins and closes its link).
/// Trampoline programs are bound to their target when loaded: they are
/// unloaded so the slot can serve another target.
fn unbind(ebpf: &mut Ebpf, pins: &Pins, program: &str, target: &FunctionTarget, link: Held) {
    pins.release(link);
    let Some(prog) = ebpf.program_mut(program) else {
        return;
    };
    let result = match target.family {
        // Only trampoline and LSM programs come in slots.
        FunctionFamily::Kprobe | FunctionFamily::Kretprobe | FunctionFamily::RawTracepoint => {
            Ok(())
        }
        FunctionFamily::Fentry => <&mut FEntry>::try_from(prog).and_then(|p| p.unload()),
        FunctionFamily::Fexit => <&mut FExit>::try_from(prog).and_then(|p| p.unload()),
        FunctionFamily::Lsm => <&mut Lsm>::try_from(prog).and_then(|p| p.unload()),
    };
    if let Err(e) = result {
        tracing::warn!("detaching {}: {}", describe(target), chain(&e));
    }
}
