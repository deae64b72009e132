//! A process for the integration tests to aim policies at.
//!
//! `tetragond-testbin syscall NR [COUNT]`: makes syscall NR COUNT times (default
//! 1), then prints `survived` and exits 0. Killed by a policy, it prints nothing.
//! `tetragond-testbin bench NR COUNT`: prints the best-of-5 ns per syscall NR.
//! `tetragond-testbin probe VALUE`: calls `tetragond_testbin_probe(VALUE)`.

use std::time::Instant;

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn call(nr: u64) {
    // SAFETY: the tests pass harmless, argument-free syscalls (getppid, sysinfo
    // with a null pointer, ...); a failing syscall just returns an error.
    unsafe { libc::syscall(nr as libc::c_long, 0usize, 0usize, 0usize) };
}

fn bench(nr: u64, count: u64) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..count {
                call(nr);
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("syscall") => {
            let nr = arg(&args, 2, libc::SYS_getppid as u64);
            for _ in 0..arg(&args, 3, 1) {
                call(nr);
            }
            println!("survived");
        }
        Some("probe") => {
            std::hint::black_box(tetragond_testbin_probe(arg(&args, 2, 0)));
            println!("survived");
        }
        Some("bench") => {
            let nr = arg(&args, 2, libc::SYS_getppid as u64);
            println!("{:.1}", bench(nr, arg(&args, 3, 200_000)));
        }
        _ => {
            eprintln!("usage: tetragond-testbin syscall NR [COUNT] | bench NR COUNT | probe VALUE");
            std::process::exit(2);
        }
    }
}
