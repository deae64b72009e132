//! `org.tetragond.Tetragond1.Events` on the Manager's object path: what the
//! exporter did, as read-only properties (for `tetra status`). The values
//! come straight from the shared counters, without asking the main loop.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering::Relaxed, Arc},
};

use super::stats::ExportStats;

pub const INTERFACE: &str = "org.tetragond.Tetragond1.Events";

pub struct EventsService {
    pub stats: Arc<ExportStats>,
    pub file: String,
    pub socket: String,
}

#[zbus::interface(name = "org.tetragond.Tetragond1.Events")]
impl EventsService {
    /// Events written to the events file, by kind.
    #[zbus(property)]
    fn exported(&self) -> HashMap<String, u64> {
        self.stats
            .exported_by_kind()
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    }

    /// Events that never reached the file, by reason.
    #[zbus(property)]
    fn dropped(&self) -> HashMap<String, u64> {
        self.stats
            .dropped_by_reason()
            .into_iter()
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect()
    }

    /// Lines live-stream clients were too slow to take (still in the file).
    #[zbus(property)]
    fn stream_dropped(&self) -> u64 {
        self.stats.stream_dropped.load(Relaxed)
    }

    #[zbus(property)]
    fn stream_clients(&self) -> u64 {
        self.stats.stream_clients.load(Relaxed)
    }

    #[zbus(property)]
    fn file(&self) -> String {
        self.file.clone()
    }

    /// The live stream's socket; empty when there is none.
    #[zbus(property)]
    fn socket(&self) -> String {
        self.socket.clone()
    }
}

/// The client side, for `tetra status`.
#[zbus::proxy(
    interface = "org.tetragond.Tetragond1.Events",
    default_service = "org.tetragond.Tetragond1",
    default_path = "/org/tetragond/Tetragond1"
)]
pub trait Events {
    #[zbus(property)]
    fn exported(&self) -> zbus::Result<HashMap<String, u64>>;
    #[zbus(property)]
    fn dropped(&self) -> zbus::Result<HashMap<String, u64>>;
    #[zbus(property)]
    fn stream_dropped(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn stream_clients(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn file(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn socket(&self) -> zbus::Result<String>;
}
