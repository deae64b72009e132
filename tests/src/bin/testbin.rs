//! A process for the integration tests and the VM hook tests to aim
//! policies at. Every subcommand prints one line on stdout and exits 0, so
//! a shell can grep the outcome; killed by a policy, it prints nothing.
//!
//! - `syscall NR [COUNT]`: makes syscall NR COUNT times (default 1), prints
//!   `survived`.
//! - `paced NR COUNT MS`: makes syscall NR COUNT times, MS milliseconds
//!   apart (a process with a few events a second), prints `survived`.
//! - `args NR ARG..`: makes syscall NR once with up to 6 integer arguments
//!   (decimal, negative, or 0x-hex; missing ones are 0), prints `survived`.
//! - `bench NR COUNT [STRING]`: prints the best-of-5 ns per syscall NR
//!   (its first argument STRING, when given).
//! - `probe VALUE`: calls `tetragond_testbin_probe(VALUE)`, prints `survived`.
//! - `fill COUNT`: calls `tetragond_testbin_fill` on a zeroed buffer for
//!   COUNT bytes (at most 32): `filled N`.
//! - `usdt INT U64 TEXT`: fires the USDT probe `tetragond:probe` (an SDT
//!   note in this binary) with INT in a register, U64 in memory below a
//!   register and TEXT's address in a register: `fired`.
//! - `usdt-gated`: fires the USDT probe `tetragond:gated` (7 in a
//!   register) if its semaphore is raised: prints `semaphore N`.
//! - `usdt-set`: fires the USDT probe `tetragond:set` twice over one
//!   4-byte variable in memory (0 at first), which a Set may write: prints
//!   `status N`, the variable after both passages.
//! - `open PATH`: open(2) O_RDONLY: `opened` or `error ERRNO`.
//! - `writev PATH PART..`: create PATH, then one writev(2) of the parts:
//!   `wrote N` or `error ERRNO`.
//! - `read PATH [COUNT]`: open, then one read of COUNT bytes (1): `read` or `error ERRNO`; a failed
//!   open prints `open-error ERRNO`.
//! - `exec PATH [ARGS..]`: execv(PATH, [PATH, ARGS..]); on failure prints
//!   `error ERRNO` (on success the new program prints).
//! - `map-exec PATH..`: maps the first page of each file readable and
//!   executable (as a loader maps a library), then unmaps it: `mapped`, or
//!   `error ERRNO`.
//! - `memfd-exec SUBCMD..`: copies this binary into a memfd and executes
//!   it (fexecve) with SUBCMD: an executable without a name on disk; on
//!   failure prints `error ERRNO`.
//! - `connect IP PORT [SRC_IP [SRC_PORT]]`: TCP connect (IPv4 or IPv6),
//!   first bound to SRC_IP:SRC_PORT when given (port 0: any; SO_REUSEADDR):
//!   `connected` or `error ERRNO` (`bind-error ERRNO` when the bind fails).
//! - `unix-connect PATH`: connects a Unix stream socket to PATH:
//!   `connected` or `error ERRNO`.
//! - `listen PORT`: binds 127.0.0.1:PORT, prints `listening`, then accepts
//!   and closes connections forever.
//! - `dropcaps SUBCMD..`: empties the effective, permitted and inheritable
//!   capability sets (same uid), then runs SUBCMD in this process; when that
//!   fails it prints `error ERRNO` and exits 1.
//! - `caps EFF PERM INH SUBCMD..`: sets the effective, permitted and
//!   inheritable capability sets to the given 64-bit masks (decimal or
//!   0x-hex), then runs SUBCMD in this process; when capset fails it prints
//!   `error ERRNO` and exits 1.
//! - `bpf-prog NAME`: loads a 2-instruction socket filter named NAME:
//!   `loaded` or `error ERRNO`.
//! - `bpf-map NAME`: creates an array map (4-byte keys, 8-byte values, 3
//!   entries) named NAME: `created` or `error ERRNO`.
//! - `perf-event`: opens a software dummy perf event on itself: `opened` or
//!   `error ERRNO`.
//! - `perf-kprobe FUNC`: opens a kprobe perf event on kernel function FUNC
//!   (the `kprobe` PMU, the name in this process's memory): `opened` or
//!   `error ERRNO`.
//! - `load-module PATH`: finit_module(2) of the module file at PATH:
//!   `loaded` or `error ERRNO`.
//! - `setuid UID [SUBCMD..]`: setuid(2), then SUBCMD in this process (else
//!   prints `ok`); on failure prints `error ERRNO` (and exits 1 when SUBCMD
//!   was given).
//! - `securebits BITS SUBCMD..`: prctl(PR_SET_SECUREBITS, BITS), then SUBCMD
//!   in this process; on failure prints `error ERRNO` and exits 1.
//! - `truncate PATH`: truncate(2) to 0 bytes: `truncated` or `error ERRNO`.
//! - `setxattr PATH NAME VALUE`: setxattr(2): `set` or `error ERRNO`.
//! - `getxattr PATH NAME`: getxattr(2): `value VALUE` or `error ERRNO`.
//! - `userns SUBCMD..`: runs SUBCMD in a new user namespace.
//! - `fork SUBCMD..`: the child runs SUBCMD; the parent waits and prints
//!   `child-killed SIGNAL` or `child-exited STATUS`.
//! - `int80 NR ARG..`: makes i386 syscall NR through `int 0x80` (the
//!   32-bit entry) with up to 6 arguments in ebx, ecx, edx, esi, edi, ebp
//!   (64-bit values: the kernel uses the low halves), prints
//!   `survived RET`.
//! - `int80-open PATH [junk]`: i386 open(2) of PATH (copied below 4 GiB,
//!   where a 32-bit pointer reaches) through `int 0x80`: `opened` or
//!   `error ERRNO`. With `junk`, the pointer's high 32 bits (which the
//!   kernel ignores) are not zero.
//! - `race-open DENIED OTHER COUNT`: opens DENIED COUNT times while a
//!   real-time thread on the same CPU wakes every few dozen microseconds
//!   to open OTHER, preempting the first inside whatever kernel code it
//!   is in (on a preemptible kernel): `leaked K of COUNT` (K: the opens of
//!   DENIED that succeeded), `interrupted M` (the other thread's opens).
//!   Run it under `pin CPU`.

use std::{
    ffi::CString,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::{fd::IntoRawFd, unix::ffi::OsStrExt},
    time::Instant,
};

const USAGE: &str =
    "usage: tetragond-testbin syscall NR [COUNT] | paced NR COUNT MS | args NR ARG.. \
| bench NR COUNT [STRING] | probe VALUE | answer VALUE | fill COUNT | usdt INT U64 TEXT | usdt-set | usdt-gated | open PATH | race-open DENIED OTHER COUNT | read PATH [COUNT] | writev PATH PART.. | exec PATH [ARGS..] \
| connect IP PORT [SRC_IP [SRC_PORT]] | unix-connect PATH | sock-write < TEXT | listen PORT | listen-handoff PORT | close-fd FD | dropcaps SUBCMD.. \
| caps EFF PERM INH SUBCMD.. | map-exec PATH.. | memfd-exec SUBCMD.. | setuid UID [SUBCMD..] | securebits BITS SUBCMD.. | truncate PATH \
| setxattr PATH NAME VALUE | getxattr PATH NAME | fork SUBCMD.. | pin CPU SUBCMD.. | userns SUBCMD.. \
| int80 NR ARG.. | int80-open PATH [junk] | wait-stdin SUBCMD..";

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn call(nr: u64) {
    // SAFETY: the tests pass harmless, argument-free syscalls (getppid, sysinfo
    // with a null pointer, ...); a failing syscall just returns an error.
    unsafe { libc::syscall(nr as libc::c_long, 0usize, 0usize, 0usize) };
}

/// Decimal (possibly negative) or 0x-hex, as the policies write values.
fn int_arg(s: &str) -> Option<i64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => s.parse().ok(),
    }
}

fn bench(nr: u64, count: u64, first: usize) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..count {
                // SAFETY: as `call`; `first` is 0 or a string that outlives the loop.
                unsafe { libc::syscall(nr as libc::c_long, first, 0usize, 0usize) };
            }
            start.elapsed().as_nanos() as f64 / count as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// A function for uprobe tests to attach to (by this symbol name).
#[no_mangle]
#[inline(never)]
pub extern "C" fn tetragond_testbin_probe(value: u64) -> u64 {
    std::hint::black_box(value).wrapping_add(1)
}

/// A function for uprobe Override: its return value is passed on to
/// `tetragond_testbin_probe`, where a uprobe reads what the caller got.
#[no_mangle]
#[inline(never)]
pub extern "C" fn tetragond_testbin_answer(value: u64) -> u64 {
    std::hint::black_box(value).wrapping_add(1)
}

/// A function for return uprobes with `returnCopy`: fills `buf` with up to
/// `len` bytes of `secret-words` and returns how many.
#[no_mangle]
#[inline(never)]
pub extern "C" fn tetragond_testbin_fill(buf: *mut u8, len: usize) -> isize {
    const TEXT: &[u8] = b"secret-words";
    let n = len.min(TEXT.len());
    // SAFETY: the caller passes a buffer of at least `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(TEXT.as_ptr(), std::hint::black_box(buf), n) };
    n as isize
}

/// A `.note.stapsdt` note, as `<sys/sdt.h>` writes one, for the probe
/// `tetragond:NAME` at the local label `990:` with the argument specs
/// ARGS (asm operands in braces are filled in by `asm!`), guarded by the
/// semaphore SYMBOL when given.
macro_rules! sdt_note {
    ($name:literal, $args:literal) => {
        sdt_note!($name, $args, "0")
    };
    ($name:literal, $args:literal, $semaphore:literal) => {
        concat!(
            ".pushsection .note.stapsdt,\"\",\"note\"\n",
            ".balign 4\n",
            ".4byte 992f-991f, 994f-993f, 3\n",
            "991: .asciz \"stapsdt\"\n",
            "992: .balign 4\n",
            "993: .8byte 990b\n",
            ".8byte _.stapsdt.base\n",
            ".8byte ",
            $semaphore,
            "\n",
            ".asciz \"tetragond\"\n",
            ".asciz \"",
            $name,
            "\"\n",
            ".asciz \"",
            $args,
            "\"\n",
            "994: .balign 4\n",
            ".popsection\n",
        )
    };
}

/// The `.stapsdt.base` section the notes refer to, defined once.
macro_rules! sdt_base {
    () => {
        concat!(
            ".ifndef _.stapsdt.base\n",
            ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n",
            ".weak _.stapsdt.base\n",
            ".hidden _.stapsdt.base\n",
            "_.stapsdt.base: .space 1\n",
            ".size _.stapsdt.base, 1\n",
            ".popsection\n",
            ".endif\n",
        )
    };
}

/// Fires the USDT probe `tetragond:probe`, as `<sys/sdt.h>` writes one:
/// a `nop` where the uprobe goes, and a `.note.stapsdt` note naming it and
/// saying where its arguments are: `number` in a 32-bit register (signed),
/// `words[0]` in memory 8 bytes below a register holding `&words[1]`, and
/// `text` (a C string's address) in a register. `tetragond:constant`, at
/// the same place, passes the constant -7 and `number`; `tetragond:indexed`
/// passes `words[0]` as an indexed element (the register holding
/// `&words[1]`, plus another holding 1 times 8, minus 16), then `number`.
#[inline(never)]
fn fire_usdt(number: i32, words: &[u64; 2], text: *const libc::c_char) {
    // SAFETY: a nop, and notes in sections of their own; the registers
    // are only read.
    unsafe {
        std::arch::asm!(
            // Keeps the globals `tetragond:global` names in the binary: a
            // note names them in text only, which the linker does not see.
            "lea tetragond_usdt_counter(%rip), {kept}",
            "lea tetragond_usdt_greeting(%rip), {kept}",
            "990: nop",
            sdt_note!("probe", "-4@{number:e} 8@-8({upper}) 8@{text}"),
            // A constant the compiler knew (-7), then `number`.
            sdt_note!("constant", "-4@$-7 -4@{number:e}"),
            sdt_note!("indexed", "8@-16({upper},{one},8) -4@{number:e}"),
            // Globals, as a compiler names them: one in memory (its
            // symbol, relative to %rip), one by its address, then `number`.
            sdt_note!(
                "global",
                "-4@tetragond_usdt_counter(%rip) 8@$tetragond_usdt_greeting -4@{number:e}"
            ),
            sdt_base!(),
            number = in(reg) number,
            upper = in(reg) &words[1],
            text = in(reg) text,
            one = in(reg) 1u64,
            kept = out(reg) _,
            options(att_syntax, nostack, readonly, preserves_flags),
        );
    }
}

/// Fires the USDT probe `tetragond:set`: `status[1]` in memory, 4 bytes
/// above a register holding `&status[0]` (an operand Tetragon's Set
/// writes), then `passage` in a register. The asm may write memory (a Set
/// does, behind the compiler's back), so `status` is read anew after it.
#[inline(never)]
fn fire_usdt_set(status: &mut [i32; 2], passage: i32) {
    // SAFETY: a nop, and a note in a section of its own.
    unsafe {
        std::arch::asm!(
            "990: nop",
            sdt_note!("set", "-4@4({base}) -4@{passage:e}"),
            sdt_base!(),
            base = in(reg) status.as_mut_ptr(),
            passage = in(reg) passage,
            options(att_syntax, nostack, preserves_flags),
        );
    }
}

// The globals `tetragond:global` passes, by their symbols.
std::arch::global_asm!(
    ".pushsection .data.tetragond_usdt,\"aw\",\"progbits\"",
    ".balign 4",
    ".globl tetragond_usdt_counter",
    ".hidden tetragond_usdt_counter",
    "tetragond_usdt_counter: .4byte 10833",
    ".globl tetragond_usdt_greeting",
    ".hidden tetragond_usdt_greeting",
    "tetragond_usdt_greeting: .asciz \"tetragond global\"",
    ".popsection",
);

// The semaphore of `tetragond:gated`, in `.probes` as `<sys/sdt.h>` puts
// them: a tracer raises it while it watches the probe (the kernel does,
// for a uprobe linked with its offset).
std::arch::global_asm!(
    ".pushsection .probes,\"aw\",\"progbits\"",
    ".balign 2",
    ".globl tetragond_gated_semaphore",
    ".hidden tetragond_gated_semaphore",
    "tetragond_gated_semaphore: .2byte 0",
    ".popsection",
);

extern "C" {
    static tetragond_gated_semaphore: u16;
}

/// Fires `tetragond:gated` (`passage` in a register) only while its
/// semaphore is raised, as a program built with `<sys/sdt.h>` guards a
/// probe whose arguments cost something; returns the semaphore.
#[inline(never)]
fn fire_usdt_gated(passage: i32) -> u16 {
    // SAFETY: the kernel changes the semaphore behind the program's back:
    // read as volatile.
    let raised = unsafe { std::ptr::read_volatile(&raw const tetragond_gated_semaphore) };
    if raised > 0 {
        // SAFETY: a nop, and a note in a section of its own.
        unsafe {
            std::arch::asm!(
                "990: nop",
                sdt_note!("gated", "-4@{passage:e}", "tetragond_gated_semaphore"),
                sdt_base!(),
                passage = in(reg) passage,
                options(att_syntax, nostack, readonly, preserves_flags),
            );
        }
    }
    raised
}

/// A syscall through the 32-bit entry (`int 0x80`): i386 number `nr`,
/// arguments in ebx, ecx, edx, esi, edi, ebp. Returns eax, sign-extended.
fn int80(nr: u32, a: [u64; 6]) -> i64 {
    let ret: u64;
    // SAFETY: the tests pass harmless syscalls (unshare(0), calls that fail
    // with EBADF or EINVAL, an open of a string they own); rbx and rbp are
    // saved and restored around the call (LLVM reserves both), and every
    // other register the compat entry may touch is declared clobbered.
    unsafe {
        std::arch::asm!(
            "xchg rbx, {b}",
            "push rbp",
            "mov rbp, {bp}",
            "int 0x80",
            "pop rbp",
            "xchg rbx, {b}",
            b = inout(reg) a[0] => _,
            bp = in(reg) a[5],
            inlateout("rax") u64::from(nr) => ret,
            inlateout("rcx") a[1] => _,
            inlateout("rdx") a[2] => _,
            inlateout("rsi") a[3] => _,
            inlateout("rdi") a[4] => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    ret as u32 as i32 as i64
}

/// i386 open(2) of `path` through `int 0x80`: the path is copied to a page
/// mapped below 4 GiB, where a 32-bit pointer can reach it.
fn int80_open(path: &str, junk: bool) -> Result<(), i32> {
    const I386_OPEN: u32 = 5;
    let bytes = path.as_bytes();
    if bytes.len() >= 4095 {
        return Err(libc::ENAMETOOLONG);
    }
    // SAFETY: a fresh private anonymous mapping, written within its size.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(errno());
    }
    // SAFETY: `page` holds 4096 bytes; the path and its NUL fit.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast::<u8>(), bytes.len());
        *page.cast::<u8>().add(bytes.len()) = 0;
    }
    let high = if junk { 0xdead_0000_0000 } else { 0 };
    let fd = int80(
        I386_OPEN,
        [page as u64 | high, libc::O_RDONLY as u64, 0, 0, 0, 0],
    );
    if fd < 0 {
        return Err(-fd as i32);
    }
    // SAFETY: closes the descriptor just opened.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// A `sockaddr_in`/`sockaddr_in6` for `addr`, and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// TCP connect to `to` from a socket first bound to `src`: `Err` holds the
/// line to print (`bind-error N` or `error N`).
fn connect_from(src: SocketAddr, to: SocketAddr) -> Result<(), String> {
    let family = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("error {}", errno()));
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let (ss, len) = sockaddr(src);
        if libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) != 0 {
            let e = errno();
            libc::close(fd);
            return Err(format!("bind-error {e}"));
        }
        let (ss, len) = sockaddr(to);
        let rc = libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len);
        let e = errno();
        libc::close(fd);
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("error {e}"))
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn io_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// The line `error N` for a failed call.
fn error_line(e: &std::io::Error) -> String {
    format!("error {}", io_errno(e))
}

/// Opens `denied` `count` times against a SCHED_FIFO thread that sleeps
/// a varying 20–300 µs and opens `other`, over and over: its wake-ups
/// preempt this thread wherever it is (both run on the CPU the caller was
/// pinned to). Returns the successful opens of `denied` and the other
/// thread's opens.
fn race_open(denied: &str, other: &str, count: u64) -> (u64, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let opened = std::sync::Arc::new(AtomicU64::new(0));
    let interrupter = {
        let (stop, opened, other) = (stop.clone(), opened.clone(), other.to_owned());
        std::thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 50 };
            // SAFETY: sched_setscheduler(2) on this thread with a valid param.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                eprintln!("sched_setscheduler: error {}", errno());
            }
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(std::time::Duration::from_micros(20 + x % 280));
                if std::fs::File::open(&other).is_ok() {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let leaked = (0..count)
        .filter(|_| std::fs::File::open(denied).is_ok())
        .count() as u64;
    stop.store(true, Ordering::Relaxed);
    let _ = interrupter.join();
    (leaked, opened.load(Ordering::Relaxed))
}

fn usage() -> i32 {
    eprintln!("{USAGE}");
    2
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the effective, permitted and inheritable sets of this process.
fn drop_caps() -> std::io::Result<()> {
    set_caps(0, 0, 0)
}

/// Sets the effective, permitted and inheritable sets of this process.
fn set_caps(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let word = |mask: u64, i: u32| (mask >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    });
    // SAFETY: capset reads a header and two data words the kernel's v3 ABI defines.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.as_bytes()).unwrap_or_else(|_| CString::new("?").expect("no NUL"))
}

/// Runs one subcommand (`args[0]` is its name); returns the exit status.
fn run(args: &[String]) -> i32 {
    // Positions as in the command line: args[1] is the first argument.
    match args.first().map(String::as_str) {
        Some("syscall") => {
            let nr = arg(args, 1, libc::SYS_getppid as u64);
            for _ in 0..arg(args, 2, 1) {
                call(nr);
            }
            println!("survived");
        }
        Some("paced") => {
            let nr = arg(args, 1, libc::SYS_getppid as u64);
            let pause = std::time::Duration::from_millis(arg(args, 3, 100));
            for _ in 0..arg(args, 2, 1) {
                call(nr);
                std::thread::sleep(pause);
            }
            println!("survived");
        }
        Some("args") => {
            let (Some(nr), Some(values)) = (
                args.get(1).and_then(|s| s.parse::<libc::c_long>().ok()),
                args[2.min(args.len())..]
                    .iter()
                    .map(|s| int_arg(s))
                    .collect::<Option<Vec<i64>>>(),
            ) else {
                return usage();
            };
            if values.len() > 6 {
                return usage();
            }
            let mut a = [0i64; 6];
            a[..values.len()].copy_from_slice(&values);
            // SAFETY: the tests pass syscalls that only read their integer
            // arguments (ioprio_get, ...); a failing syscall just returns an error.
            unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
            println!("survived");
        }
        Some("probe") => {
            std::hint::black_box(tetragond_testbin_probe(arg(args, 1, 0)));
            println!("survived");
        }
        Some("answer") => {
            let got = tetragond_testbin_answer(arg(args, 1, 0));
            std::hint::black_box(tetragond_testbin_probe(got));
            println!("answer {got}");
        }
        Some("fill") => {
            // Zeroed first: the uprobe must read what the call wrote.
            let mut buf = [0u8; 32];
            let len = (arg(args, 1, 0) as usize).min(buf.len());
            let n = tetragond_testbin_fill(buf.as_mut_ptr(), len);
            println!("filled {n}");
        }
        Some("usdt") => {
            let number = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let words = [arg(args, 2, 0), 0];
            let text = cstring(args.get(3).map_or("", String::as_str));
            fire_usdt(number, std::hint::black_box(&words), text.as_ptr());
            println!("fired");
        }
        Some("usdt-gated") => {
            let raised = fire_usdt_gated(7);
            println!("semaphore {raised}");
        }
        Some("usdt-set") => {
            let mut status = [0i32; 2];
            for passage in 1..=2 {
                fire_usdt_set(std::hint::black_box(&mut status), passage);
            }
            println!("status {}", std::hint::black_box(&status)[1]);
        }
        // N identical calls, a pause of PAUSE_MS, then one more.
        Some("burst") => {
            let nr = arg(args, 1, libc::SYS_getppid as u64);
            for _ in 0..arg(args, 2, 1) {
                call(nr);
            }
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 3, 100)));
            call(nr);
            println!("survived");
        }
        // Nanoseconds per call of syscall NR, its first argument STRING
        // when given (getppid ignores it; a hook may read it).
        Some("bench") => {
            let nr = arg(args, 1, libc::SYS_getppid as u64);
            let string = args.get(3).map(|s| cstring(s));
            let first = string.as_ref().map_or(0, |s| s.as_ptr() as usize);
            println!("{:.1}", bench(nr, arg(args, 2, 200_000), first));
        }
        Some("race-open") => {
            let (Some(denied), Some(other)) = (args.get(1), args.get(2)) else {
                return usage();
            };
            let count = arg(args, 3, 1000);
            let (leaked, interrupted) = race_open(denied, other, count);
            println!("leaked {leaked} of {count}");
            println!("interrupted {interrupted}");
        }
        Some("open") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            match std::fs::File::open(path) {
                Ok(_) => println!("opened"),
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("read") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            match std::fs::File::open(path) {
                Ok(mut f) => {
                    // One read(2) of COUNT bytes (1 unless given).
                    let count = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
                    let mut bytes = vec![0u8; count];
                    // Any count, even 0 at end of file: the read was allowed.
                    match f.read(&mut bytes) {
                        Ok(_n) => println!("read"),
                        Err(e) => println!("{}", error_line(&e)),
                    }
                }
                Err(e) => println!("open-error {}", io_errno(&e)),
            }
        }
        // The rest of the command in a new user namespace (where the
        // task holds every capability).
        Some("userns") => {
            // SAFETY: plain unshare(2) of this single-threaded process.
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
                println!("error {}", errno());
                return 1;
            }
            return run(&args[1..]);
        }
        Some("exec") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            let program = cstring(path);
            let argv: Vec<CString> = args[1..].iter().map(|a| cstring(a)).collect();
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let _ = std::io::stdout().flush();
            // SAFETY: NUL-terminated strings and a null-terminated argv that outlive the call.
            unsafe { libc::execv(program.as_ptr(), ptrs.as_ptr()) };
            println!("error {}", errno());
        }
        Some("map-exec") => {
            // Each file mapped executable (as a loader maps a library).
            for path in &args[1..] {
                let Ok(file) = std::fs::File::open(path) else {
                    println!("error {}", errno());
                    return 1;
                };
                let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
                // SAFETY: a fresh private mapping of an open file, never
                // touched, unmapped below.
                let at = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_EXEC,
                        libc::MAP_PRIVATE,
                        fd,
                        0,
                    )
                };
                if at == libc::MAP_FAILED {
                    println!("error {}", errno());
                    return 1;
                }
                // SAFETY: the mapping made above.
                unsafe { libc::munmap(at, 4096) };
            }
            println!("mapped");
        }
        Some("memfd-exec") => {
            // A copy of this binary in a memfd (no name on disk), executed
            // with SUBCMD as its arguments.
            let Ok(me) = std::fs::read("/proc/self/exe") else {
                println!("error {}", errno());
                return 1;
            };
            let name = cstring("tetragond-testbin");
            // SAFETY: a NUL-terminated name.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
            if fd < 0 {
                println!("error {}", errno());
                return 1;
            }
            // SAFETY: a descriptor this process just made, owned here.
            let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            if file.write_all(&me).is_err() {
                println!("error {}", errno());
                return 1;
            }
            let argv: Vec<CString> = std::iter::once("tetragond-testbin")
                .chain(args[1..].iter().map(String::as_str))
                .map(cstring)
                .collect();
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let env: [*const libc::c_char; 1] = [std::ptr::null()];
            let _ = std::io::stdout().flush();
            // SAFETY: a valid descriptor, a null-terminated argv and envp
            // that outlive the call.
            unsafe { libc::fexecve(fd, ptrs.as_ptr(), env.as_ptr()) };
            println!("error {}", errno());
        }
        Some("connect") => {
            let (Some(ip), Some(port)) = (
                args.get(1).and_then(|s| s.parse::<IpAddr>().ok()),
                args.get(2).and_then(|s| s.parse::<u16>().ok()),
            ) else {
                return usage();
            };
            let src = match (args.get(3), args.get(4)) {
                (None, _) => None,
                (Some(a), p) => {
                    match (a.parse::<IpAddr>(), p.map_or(Ok(0), |p| p.parse::<u16>())) {
                        (Ok(a), Ok(p)) => Some(SocketAddr::new(a, p)),
                        _ => return usage(),
                    }
                }
            };
            let to = SocketAddr::new(ip, port);
            let result = match src {
                None => TcpStream::connect(to).map(drop).map_err(|e| error_line(&e)),
                Some(src) => connect_from(src, to),
            };
            match result {
                Ok(()) => println!("connected"),
                Err(line) => println!("{line}"),
            }
        }
        Some("unix-connect") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => println!("connected"),
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("sock-write") => {
            // Standard input, in one write(2) into a Unix socket pair: the
            // kernel's sock_write_iter gets it as an iov_iter (the same
            // function on every kernel, unlike the pipe's).
            let mut text = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut text) {
                println!("{}", error_line(&e));
                return 1;
            }
            match std::os::unix::net::UnixStream::pair() {
                Ok((a, _b)) => {
                    // write(2) itself (std's sockets send(2), which does not
                    // go through sock_write_iter).
                    use std::os::fd::AsRawFd;
                    // SAFETY: `text` is valid for its length; `a` is open.
                    let n = unsafe { libc::write(a.as_raw_fd(), text.as_ptr().cast(), text.len()) };
                    println!("wrote {n}");
                }
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("listen") => {
            let Some(port) = args.get(1).and_then(|s| s.parse::<u16>().ok()) else {
                return usage();
            };
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => {
                    println!("listening");
                    let _ = std::io::stdout().flush();
                    for conn in listener.incoming() {
                        drop(conn);
                    }
                }
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("listen-handoff") => {
            // A listening socket made here, closed by a child process
            // (this binary again, `close-fd N`): the socket's owner and the
            // task closing it differ (TrackSock).
            let Some(port) = args.get(1).and_then(|s| s.parse::<u16>().ok()) else {
                return usage();
            };
            let listener = match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => listener,
                Err(e) => {
                    println!("{}", error_line(&e));
                    return 1;
                }
            };
            let fd = listener.into_raw_fd();
            // SAFETY: clears close-on-exec on a descriptor this process owns.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            // The child closes once told, after this process's copy is
            // closed: its close is the last, which changes the state.
            let child = std::process::Command::new("/proc/self/exe")
                .args(["wait-stdin", "close-fd", &fd.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn();
            // SAFETY: this process's copy; the child holds the socket open.
            unsafe { libc::close(fd) };
            let go = |mut c: std::process::Child| {
                c.stdin.take().map(|mut i| i.write_all(b"go\n"));
                c.wait()
            };
            match child.and_then(go) {
                Ok(status) if status.success() => println!("handed-off"),
                Ok(status) => println!("child {status}"),
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("close-fd") => {
            let Some(fd) = args.get(1).and_then(|s| s.parse::<i32>().ok()) else {
                return usage();
            };
            // SAFETY: a descriptor this process inherited to close.
            if unsafe { libc::close(fd) } != 0 {
                println!("error {}", errno());
                return 1;
            }
        }
        Some("wait-stdin") => {
            // "ready", then SUBCMD once a line comes on stdin: a test can
            // change the kernel's view of this process in between.
            println!("ready");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() || args.len() < 2 {
                return usage();
            }
            return run(&args[1..]);
        }
        Some("dropcaps") => {
            if args.len() < 2 {
                return usage();
            }
            if let Err(e) = drop_caps() {
                // Not 0: a test expecting the subcommand to survive must not
                // pass when it never ran without capabilities.
                println!("{}", error_line(&e));
                return 1;
            }
            return run(&args[1..]);
        }
        Some("caps") => {
            let masks: Option<Vec<u64>> = args
                .get(1..4)
                .and_then(|m| m.iter().map(|s| int_arg(s).map(|v| v as u64)).collect());
            let (Some(masks), true) = (masks, args.len() >= 5) else {
                return usage();
            };
            if let Err(e) = set_caps(masks[0], masks[1], masks[2]) {
                println!("{}", error_line(&e));
                return 1;
            }
            return run(&args[4..]);
        }
        Some("truncate") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            let path = cstring(path);
            // SAFETY: a valid C string; truncate(2) reports through errno.
            if unsafe { libc::truncate(path.as_ptr(), 0) } == 0 {
                println!("truncated");
            } else {
                println!("error {}", errno());
            }
        }
        Some("setxattr") => {
            let (Some(path), Some(name), Some(value)) = (args.get(1), args.get(2), args.get(3))
            else {
                return usage();
            };
            let (path, name) = (cstring(path), cstring(name));
            // SAFETY: valid C strings and a buffer of the length given.
            let ret = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            report(ret as libc::c_long, "set");
        }
        Some("getxattr") => {
            let (Some(path), Some(name)) = (args.get(1), args.get(2)) else {
                return usage();
            };
            let (path, name) = (cstring(path), cstring(name));
            let mut value = [0u8; 256];
            // SAFETY: valid C strings and a buffer of the length given.
            let n = unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            match usize::try_from(n) {
                Ok(n) => println!("value {}", String::from_utf8_lossy(&value[..n])),
                Err(_) => println!("error {}", errno()),
            }
        }
        Some("writev") => {
            let (Some(path), parts) = (args.get(1), &args[2.min(args.len())..]) else {
                return usage();
            };
            let file = match std::fs::File::create(path) {
                Ok(file) => file,
                Err(e) => {
                    println!("{}", error_line(&e));
                    return 1;
                }
            };
            let slices: Vec<std::io::IoSlice> = parts
                .iter()
                .map(|p| std::io::IoSlice::new(p.as_bytes()))
                .collect();
            // One writev(2) of every part.
            match (&file).write_vectored(&slices) {
                Ok(n) => println!("wrote {n}"),
                Err(e) => println!("{}", error_line(&e)),
            }
        }
        Some("bpf-prog") => {
            let Some(name) = args.get(1) else {
                return usage();
            };
            report(bpf_prog_load(name), "loaded");
        }
        Some("bpf-map") => {
            let Some(name) = args.get(1) else {
                return usage();
            };
            report(bpf_map_create(name), "created");
        }
        Some("perf-event") => report(perf_event_open(), "opened"),
        Some("perf-kprobe") => {
            let Some(func) = args.get(1) else {
                return usage();
            };
            report(perf_kprobe_open(func), "opened");
        }
        Some("load-module") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            report(load_module(path), "loaded");
        }
        Some("setuid") => {
            let Some(uid) = args.get(1).and_then(|s| s.parse::<libc::uid_t>().ok()) else {
                return usage();
            };
            // SAFETY: plain setuid(2).
            if unsafe { libc::setuid(uid) } != 0 {
                println!("error {}", errno());
                // Not 0 when a subcommand was to run without privileges.
                return i32::from(args.len() > 2);
            }
            if args.len() > 2 {
                return run(&args[2..]);
            }
            println!("ok");
        }
        Some("securebits") => {
            let (Some(bits), true) = (args.get(1).and_then(|s| int_arg(s)), args.len() >= 3) else {
                return usage();
            };
            // SAFETY: prctl(2) with integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) } != 0
            {
                println!("error {}", errno());
                return 1;
            }
            return run(&args[2..]);
        }
        Some("pin") => {
            let Some(cpu) = args.get(1).and_then(|s| s.parse::<usize>().ok()) else {
                return usage();
            };
            if args.len() < 3 || cpu >= libc::CPU_SETSIZE as usize {
                return usage();
            }
            // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET is given
            // a number below CPU_SETSIZE; sched_setaffinity reads the set.
            let rc = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
            if rc != 0 {
                println!("error {}", errno());
                return 1;
            }
            // Children inherit the one CPU.
            return run(&args[2..]);
        }
        Some("fork") => {
            if args.len() < 2 {
                return usage();
            }
            let _ = std::io::stdout().flush();
            // SAFETY: this process is single-threaded; the child only runs
            // the subcommand and exits.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                println!("error {}", errno());
                return 0;
            }
            if pid == 0 {
                let code = run(&args[1..]);
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
                if errno() != libc::EINTR {
                    println!("error {}", errno());
                    return 0;
                }
            }
            if libc::WIFSIGNALED(status) {
                println!("child-killed {}", libc::WTERMSIG(status));
            } else {
                println!("child-exited {}", libc::WEXITSTATUS(status));
            }
        }
        Some("int80") => {
            let (Some(nr), Some(values)) = (
                args.get(1).and_then(|s| s.parse::<u32>().ok()),
                args[2.min(args.len())..]
                    .iter()
                    .map(|s| int_arg(s))
                    .collect::<Option<Vec<i64>>>(),
            ) else {
                return usage();
            };
            if values.len() > 6 {
                return usage();
            }
            let mut a = [0u64; 6];
            for (slot, v) in a.iter_mut().zip(&values) {
                *slot = *v as u64;
            }
            println!("survived {}", int80(nr, a));
        }
        Some("int80-open") => {
            let Some(path) = args.get(1) else {
                return usage();
            };
            let junk = match args.get(2).map(String::as_str) {
                None => false,
                Some("junk") => true,
                Some(_) => return usage(),
            };
            match int80_open(path, junk) {
                Ok(()) => println!("opened"),
                Err(e) => println!("error {e}"),
            }
        }
        _ => return usage(),
    }
    0
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect();
    std::process::exit(run(&args));
}

/// Prints `ok` for a call that returned a descriptor, else `error ERRNO`.
fn report(ret: libc::c_long, ok: &str) {
    if ret >= 0 {
        println!("{ok}");
    } else {
        println!("error {}", errno());
    }
}

/// A `union bpf_attr` as bytes, with `name` (at most 15 bytes) at `at`.
fn bpf_attr(name: &str, at: usize) -> [u8; 128] {
    let mut attr = [0u8; 128];
    let n = name.len().min(15);
    attr[at..at + n].copy_from_slice(&name.as_bytes()[..n]);
    attr
}

fn bpf(cmd: libc::c_long, attr: &[u8; 128]) -> libc::c_long {
    // Before Linux 5.11, BPF memory is charged to the user's locked memory
    // (the daemon's maps included) against this process's limit.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain setrlimit(2); failing, the call below reports it.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    // SAFETY: the attr buffer outlives the call and is as long as said.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len()) }
}

/// BPF_PROG_LOAD of `r0 = 0; exit` as BPF_PROG_TYPE_SOCKET_FILTER.
fn bpf_prog_load(name: &str) -> libc::c_long {
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = bpf_attr(name, 48);
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    bpf(5, &attr)
}

/// BPF_MAP_CREATE of a BPF_MAP_TYPE_ARRAY.
fn bpf_map_create(name: &str) -> libc::c_long {
    let mut attr = bpf_attr(name, 28);
    for (i, v) in [2u32, 4, 8, 3].into_iter().enumerate() {
        attr[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
    }
    bpf(0, &attr)
}

/// perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY) on this task.
fn perf_event_open() -> libc::c_long {
    perf_open(1, 9, 0)
}

/// perf_event_open of a perf_event_attr (PERF_ATTR_SIZE_VER1) with this
/// type, config and config1, on this task.
fn perf_open(event_type: u32, config: u64, config1: u64) -> libc::c_long {
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&event_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&72u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&config.to_ne_bytes());
    attr[56..64].copy_from_slice(&config1.to_ne_bytes());
    // SAFETY: an attr of the size it says, that outlives the call.
    unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) }
}

/// A kprobe perf event on `func`: the `kprobe` PMU's type, and the
/// function's name (config1, `kprobe_func`) in this process's memory.
fn perf_kprobe_open(func: &str) -> libc::c_long {
    let Some(pmu) = std::fs::read_to_string("/sys/bus/event_source/devices/kprobe/type")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        // SAFETY: sets errno for `report`, as a failed call would.
        unsafe { *libc::__errno_location() = libc::ENOENT };
        return -1;
    };
    let name = cstring(func);
    perf_open(pmu, 0, name.as_ptr() as u64)
}

/// finit_module(2) of the file at `path`, with no parameters.
fn load_module(path: &str) -> libc::c_long {
    let Ok(file) = std::fs::File::open(path) else {
        return -1;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: a descriptor this function owns, and an empty C string.
    unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), 0) }
}
