//! sd_notify: READY, RELOADING (with MONOTONIC_USEC), STATUS, STOPPING,
//! WATCHDOG. Without NOTIFY_SOCKET every call is a no-op, as systemd intends.
//!
//! Sends never block: a notify socket whose reader stalls must not stall the
//! daemon (the sd-notify crate's blocking send did exactly that), so a full
//! queue drops the message with a warning.

use std::{
    io,
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
};

fn socket_addr() -> Option<io::Result<SocketAddr>> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = path.as_encoded_bytes();
    Some(match bytes.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(path),
    })
}

fn send(message: &str) {
    let Some(addr) = socket_addr() else { return };
    let result = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        socket.send_to_addr(message.as_bytes(), &addr).map(|_| ())
    });
    if let Err(e) = result {
        tracing::warn!("sd_notify {message:?} not sent: {e}");
    }
}

pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}\n"));
}

pub fn reloading() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\n"));
}

pub fn status(status: &str) {
    send(&format!("STATUS={status}\n"));
}

pub fn stopping() {
    send("STOPPING=1\n");
}

pub fn watchdog() {
    send("WATCHDOG=1\n");
}
