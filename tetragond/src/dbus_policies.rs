//! One D-Bus object per policy, `/org/tetragond/Tetragond1/policy/<id>`,
//! interface `org.tetragond.Tetragond1.Policy`, appearing and vanishing with
//! the policies (the Manager path is an ObjectManager), with
//! PropertiesChanged when a policy's mode or state changes.
//!
//! Properties are read from a snapshot the publishing task refreshes, never
//! by asking the main loop: zbus reads them while it registers an object,
//! holding its object tree, which a Manager call waiting on the main loop
//! may hold too.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use tokio::sync::watch;
use zbus::{
    interface,
    object_server::SignalEmitter,
    zvariant::{ObjectPath, OwnedObjectPath, Value},
    Connection,
};

use crate::api::{PolicyInfo, OBJECT_PATH};

pub const POLICY_INTERFACE: &str = "org.tetragond.Tetragond1.Policy";

type Snapshot = Arc<RwLock<BTreeMap<u64, PolicyInfo>>>;

pub fn policy_path(id: u64) -> Result<OwnedObjectPath, zbus::zvariant::Error> {
    ObjectPath::try_from(format!("{OBJECT_PATH}/policy/{id}")).map(OwnedObjectPath::from)
}

struct PolicyObject {
    id: u64,
    snapshot: Snapshot,
}

impl PolicyObject {
    fn read<T: Default>(&self, f: impl FnOnce(&PolicyInfo) -> T) -> T {
        self.snapshot
            .read()
            .ok()
            .and_then(|s| s.get(&self.id).map(f))
            .unwrap_or_default()
    }
}

#[interface(name = "org.tetragond.Tetragond1.Policy")]
impl PolicyObject {
    /// The ID column of `tetra tp list`.
    #[zbus(property)]
    fn id(&self) -> u64 {
        self.id
    }
    #[zbus(property)]
    fn name(&self) -> String {
        self.read(|p| p.name.clone())
    }
    /// Empty for a global policy.
    #[zbus(property)]
    fn namespace(&self) -> String {
        self.read(|p| p.namespace.clone())
    }
    #[zbus(property)]
    fn domain(&self) -> String {
        self.read(|p| p.domain.clone())
    }
    /// `enabled`, `disabled` or `load_error`.
    #[zbus(property)]
    fn state(&self) -> String {
        self.read(|p| p.state.clone())
    }
    /// The load error, empty when none.
    #[zbus(property)]
    fn error(&self) -> String {
        self.read(|p| p.error.clone())
    }
    /// `enforce`, `monitor`, `monitor_only`, or `unknown` when not loaded.
    #[zbus(property)]
    fn mode(&self) -> String {
        self.read(|p| p.mode.clone())
    }
    /// `policy`, `sidecar` or `runtime`.
    #[zbus(property)]
    fn mode_source(&self) -> String {
        self.read(|p| p.mode_source.clone())
    }
    #[zbus(property)]
    fn sensors(&self) -> Vec<String> {
        self.read(|p| p.sensors.clone())
    }
    /// Bytes, base 1000 in `tetra tp list`.
    #[zbus(property)]
    fn kernel_memory(&self) -> u64 {
        self.read(|p| p.kernel_memory)
    }
    #[zbus(property(emits_changed_signal = "false"), name = "NPost")]
    fn npost(&self) -> u64 {
        self.read(|p| p.npost)
    }
    #[zbus(property(emits_changed_signal = "false"), name = "NEnforce")]
    fn nenforce(&self) -> u64 {
        self.read(|p| p.nenforce)
    }
    #[zbus(property(emits_changed_signal = "false"), name = "NMonitor")]
    fn nmonitor(&self) -> u64 {
        self.read(|p| p.nmonitor)
    }
    /// Events a Post `rateLimit` kept from being posted.
    #[zbus(property(emits_changed_signal = "false"), name = "NRateLimited")]
    fn nratelimited(&self) -> u64 {
        self.read(|p| p.nratelimited)
    }
    /// The YAML file the policy came from.
    #[zbus(property)]
    fn file(&self) -> String {
        self.read(|p| p.file.clone())
    }
}

/// The policy objects the daemon has published.
pub struct PolicyObjects {
    conn: Connection,
    snapshot: Snapshot,
}

impl PolicyObjects {
    /// Publishes each list `lists` is given, on a task of its own: the
    /// main loop must never wait on the object server, whose locks a
    /// Manager call holds while it waits on the main loop (a deadlock seen
    /// when `tetra status` came during a rescan). The latest list wins;
    /// changes between two published ones are signalled together.
    pub fn spawn(conn: Connection, mut lists: watch::Receiver<Vec<PolicyInfo>>) {
        let objects = PolicyObjects {
            conn,
            snapshot: Arc::default(),
        };
        tokio::spawn(async move {
            loop {
                let list = lists.borrow_and_update().clone();
                objects.sync(list).await;
                if lists.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Publishes `current`: new policies appear, gone ones vanish, and a
    /// change of state, mode or error is signalled.
    async fn sync(&self, current: Vec<PolicyInfo>) {
        let current: BTreeMap<u64, PolicyInfo> = current.into_iter().map(|p| (p.id, p)).collect();
        let previous = match self.snapshot.write() {
            Ok(mut s) => std::mem::replace(&mut *s, current.clone()),
            Err(_) => return,
        };
        let server = self.conn.object_server();
        for id in previous.keys().filter(|id| !current.contains_key(id)) {
            if let Ok(path) = policy_path(*id) {
                let _ = server.remove::<PolicyObject, _>(&path).await;
            }
        }
        for (id, info) in &current {
            let Ok(path) = policy_path(*id) else { continue };
            match previous.get(id) {
                None => {
                    let object = PolicyObject {
                        id: *id,
                        snapshot: self.snapshot.clone(),
                    };
                    if let Err(e) = server.at(&path, object).await {
                        tracing::warn!("publishing {path}: {e}");
                    }
                }
                Some(old) => self.signal_changes(&path, old, info).await,
            }
        }
    }

    async fn signal_changes(&self, path: &OwnedObjectPath, old: &PolicyInfo, new: &PolicyInfo) {
        let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
        for (name, before, after) in [
            ("State", &old.state, &new.state),
            ("Mode", &old.mode, &new.mode),
            ("ModeSource", &old.mode_source, &new.mode_source),
            ("Error", &old.error, &new.error),
            ("Name", &old.name, &new.name),
        ] {
            if before != after {
                changed.insert(name, Value::from(after.as_str()));
            }
        }
        if old.sensors != new.sensors {
            changed.insert("Sensors", Value::from(new.sensors.clone()));
        }
        if changed.is_empty() {
            return;
        }
        let Ok(emitter) = SignalEmitter::new(&self.conn, path.clone()) else {
            return;
        };
        let interface = zbus::names::InterfaceName::from_static_str_unchecked(POLICY_INTERFACE);
        if let Err(e) = zbus::fdo::Properties::properties_changed(
            &emitter,
            interface,
            changed,
            Default::default(),
        )
        .await
        {
            tracing::warn!("PropertiesChanged on {path}: {e}");
        }
    }
}
