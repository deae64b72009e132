//! The live event stream: a Unix socket (mode 0600) where every exported
//! line is written to every connected client, for `tetra getevents`.
//!
//! The main loop never waits for a client: each has a bounded queue filled
//! with `try_send`. A client too slow to keep up loses lines (they are still
//! in the events file); the loss is counted and the client is told with a
//! `rate_limit_info` line (reason `stream_slow_client`).

use std::{
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
};

use tokio::{
    io::AsyncWriteExt,
    net::{UnixListener, UnixStream},
    sync::mpsc::{self, error::TrySendError},
};

use super::stats::{ExportStats, STREAM_SLOW_CLIENT};
use crate::events;

/// Lines queued per client before it starts losing them.
pub const CLIENT_QUEUE: usize = 16_384;
/// Clients served at once (each may queue CLIENT_QUEUE lines); more are
/// closed at once, so connections cannot exhaust memory or descriptors.
pub const MAX_CLIENTS: usize = 16;

struct Client {
    tx: mpsc::Sender<Arc<[u8]>>,
    missed: Arc<AtomicU64>,
}

/// The main loop's side: the connected clients.
pub struct StreamHub {
    path: PathBuf,
    clients: Vec<Client>,
    new_clients: mpsc::UnboundedReceiver<Client>,
    stats: Arc<ExportStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{}: another process serves events there", path.display())]
    InUse { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Binds `path` and accepts clients on a task of their own.
pub fn serve(
    path: &Path,
    stats: Arc<ExportStats>,
    node_name: &str,
) -> Result<StreamHub, StreamError> {
    let io_err = |source| StreamError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    if path.exists() {
        // A socket nobody answers on is a leftover of a previous run.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StreamError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io_err)?;
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    let (tx, new_clients) = mpsc::unbounded_channel();
    let node = node_name.to_string();
    tokio::spawn(accept_loop(listener, tx, node));
    Ok(StreamHub {
        path: path.to_path_buf(),
        clients: vec![],
        new_clients,
        stats,
    })
}

async fn accept_loop(listener: UnixListener, tx: mpsc::UnboundedSender<Client>, node: String) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("event stream: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("event stream: {MAX_CLIENTS} clients already, one refused");
            continue;
        };
        let (line_tx, line_rx) = mpsc::channel(CLIENT_QUEUE);
        let missed = Arc::new(AtomicU64::new(0));
        if tx
            .send(Client {
                tx: line_tx,
                missed: missed.clone(),
            })
            .is_err()
        {
            return; // the hub is gone: the daemon is stopping
        }
        let node = node.clone();
        tokio::spawn(async move {
            client_loop(stream, line_rx, missed, node).await;
            drop(slot);
        });
    }
}

/// Writes queued lines to one client, a batch per write.
async fn client_loop(
    mut stream: UnixStream,
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    missed: Arc<AtomicU64>,
    node: String,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(line) = rx.recv().await {
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(line) => {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                }
                Err(_) => break,
            }
        }
        let lost = missed.swap(0, Relaxed);
        if lost > 0 {
            let notice = events::rate_limit_info(
                lost,
                STREAM_SLOW_CLIENT,
                "",
                &crate::clock::now_rfc3339(),
                &node,
            );
            buf.extend_from_slice(&notice.line);
            buf.push(b'\n');
        }
        if stream.write_all(&buf).await.is_err() {
            return; // the client left; the hub notices on its next send
        }
        buf.clear();
    }
}

impl StreamHub {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands `line` to every client without waiting. Clients that connected
    /// since the last [`StreamHub::accept_new`] (once per ring buffer drain)
    /// get the lines after it: no check per line.
    pub fn send(&mut self, line: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let line: Arc<[u8]> = Arc::from(line);
        let stats = &self.stats;
        self.clients.retain(|c| match c.tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                c.missed.fetch_add(1, Relaxed);
                stats.stream_dropped.fetch_add(1, Relaxed);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        });
        self.stats
            .stream_clients
            .store(self.clients.len() as u64, Relaxed);
    }

    /// Registers clients that connected since the last call, and forgets
    /// the ones that left.
    pub fn accept_new(&mut self) {
        while let Ok(c) = self.new_clients.try_recv() {
            self.clients.push(c);
        }
        self.clients.retain(|c| !c.tx.is_closed());
        self.stats
            .stream_clients
            .store(self.clients.len() as u64, Relaxed);
    }
}

impl Drop for StreamHub {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_client_loses_lines_counted_and_told() {
        let path =
            std::env::temp_dir().join(format!("tetragond-stream-{}.sock", std::process::id()));
        let stats = Arc::new(ExportStats::default());
        let mut hub = serve(&path, stats.clone(), "node").expect("serve");
        let client = UnixStream::connect(&path).await.expect("connect");
        // Wait until the accept task handed the client over.
        for _ in 0..200 {
            hub.accept_new();
            if stats.stream_clients.load(Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(stats.stream_clients.load(Relaxed), 1);
        // The client reads nothing: its queue and the socket buffer fill.
        let line = format!("{{\"x\":\"{}\"}}", "y".repeat(200));
        let total = CLIENT_QUEUE as u64 * 4;
        for _ in 0..total {
            hub.send(line.as_bytes());
        }
        let missed = stats.stream_dropped.load(Relaxed);
        assert!(missed > 0, "lines were dropped for the slow client");
        let mut lines = BufReader::new(client).lines();
        let (mut got, mut told) = (0u64, 0u64);
        while got + told < total && !(told > 0 && got + told == total) {
            let Ok(Ok(Some(l))) =
                tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line()).await
            else {
                break;
            };
            if l.contains("stream_slow_client") {
                let v: serde_json::Value = serde_json::from_str(&l).expect("JSON");
                told += v["rate_limit_info"]["number_of_dropped_process_events"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("count");
                continue;
            }
            got += 1;
        }
        assert_eq!(told, missed, "the client is told how many it missed");
        assert_eq!(
            got + missed,
            total,
            "every line either delivered or counted"
        );
        assert!(
            matches!(
                serve(&path, stats.clone(), "node"),
                Err(StreamError::InUse { .. })
            ),
            "a live socket is not taken over"
        );
        drop(hub);
        assert!(!path.exists(), "the socket is removed");
    }
}
