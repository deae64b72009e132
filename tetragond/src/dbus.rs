//! The D-Bus face of the control API: the `Manager` object the daemon serves
//! and the client proxy the `tetra` CLI uses.
//!
//! The server holds no state. Each method call becomes a [`Request`] sent to
//! the daemon's main loop, and the reply travels back on a oneshot channel,
//! so the main loop stays the only owner of the policy store.
//!
//! Bus name, object path and interface name are the constants of
//! [`crate::api`]; the zbus macros want string literals, so they are spelled
//! out again below and a test checks that both agree.

use std::fmt;
use std::str::FromStr;

use tokio::sync::{mpsc, oneshot};
use zbus::connection::Builder;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::proxy::CacheProperties;
use zbus::{interface, Connection};

use crate::api::{ApiError, PolicyInfo, Reply, Request, BUS_NAME, OBJECT_PATH};
use crate::dbus_limits::CallerLimits;
use crate::policy::PolicyKey;

/// Which message bus to use, as given on a command line: `system`,
/// `session`, or a D-Bus address such as `unix:path=/run/x/bus`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BusChoice {
    #[default]
    System,
    Session,
    Address(String),
}

impl FromStr for BusChoice {
    type Err = std::convert::Infallible;

    /// Never fails: anything that is not a bus kind is taken as an address,
    /// and a bad address is reported when connecting.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "system" => BusChoice::System,
            "session" => BusChoice::Session,
            address => BusChoice::Address(address.to_owned()),
        })
    }
}

impl fmt::Display for BusChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusChoice::System => f.write_str("system"),
            BusChoice::Session => f.write_str("session"),
            BusChoice::Address(address) => f.write_str(address),
        }
    }
}

impl BusChoice {
    /// A connection builder for this bus, with nothing served yet.
    pub fn builder(&self) -> zbus::Result<Builder<'_>> {
        match self {
            BusChoice::System => Builder::system(),
            BusChoice::Session => Builder::session(),
            BusChoice::Address(address) => Builder::address(address.as_str()),
        }
    }

    /// Connects as a plain client (what `tetra` does).
    pub async fn connect(&self) -> zbus::Result<Connection> {
        self.builder()?.build().await
    }
}

/// The errors of the D-Bus API. Each variant but `ZBus` becomes the D-Bus
/// error `org.tetragond.Tetragond1.Error.<Variant>` with the text as its
/// message, mirroring [`ApiError`].
///
/// On the client side, a method error with one of these names comes back as
/// the matching variant; anything else (no daemon, bus refused the call, ...)
/// is `ZBus`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.tetragond.Tetragond1.Error")]
pub enum DbusError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NotFound(String),
    InvalidMode(String),
    MonitorOnly(String),
    InvalidPolicy(String),
    AlreadyExists(String),
    AccessDenied(String),
    Failed(String),
    /// A caller that is not root made more calls than it may.
    LimitsExceeded(String),
}

impl From<ApiError> for DbusError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(m) => DbusError::NotFound(m),
            ApiError::InvalidMode(m) => DbusError::InvalidMode(m),
            ApiError::MonitorOnly(m) => DbusError::MonitorOnly(m),
            ApiError::InvalidPolicy(m) => DbusError::InvalidPolicy(m),
            ApiError::AlreadyExists(m) => DbusError::AlreadyExists(m),
            ApiError::AccessDenied(m) => DbusError::AccessDenied(m),
            ApiError::Failed(m) => DbusError::Failed(m),
        }
    }
}

impl DbusError {
    /// The human text of the error, without the D-Bus error name: what a
    /// user should read after `Error: `.
    pub fn message(&self) -> String {
        match self {
            DbusError::NotFound(m)
            | DbusError::InvalidMode(m)
            | DbusError::MonitorOnly(m)
            | DbusError::InvalidPolicy(m)
            | DbusError::AlreadyExists(m)
            | DbusError::AccessDenied(m)
            | DbusError::Failed(m)
            | DbusError::LimitsExceeded(m) => m.clone(),
            // Errors from the bus itself (e.g. ServiceUnknown) carry their
            // explanation in the description; other zbus errors only in
            // their Display.
            DbusError::ZBus(zbus::Error::MethodError(_, Some(desc), _)) => desc.clone(),
            DbusError::ZBus(e) => e.to_string(),
        }
    }
}

/// The object served at [`OBJECT_PATH`]. It forwards every call to the main
/// loop: root's calls through `root_requests`, the others through
/// `requests`, once the caller's allowance admits them.
pub struct ManagerService {
    requests: mpsc::Sender<Request>,
    root_requests: mpsc::Sender<Request>,
    limits: CallerLimits,
}

impl ManagerService {
    /// Every call on one lane.
    pub fn new(requests: mpsc::Sender<Request>) -> Self {
        ManagerService {
            root_requests: requests.clone(),
            requests,
            limits: CallerLimits::default(),
        }
    }

    /// Root's calls on a lane of their own, which no flood of other
    /// callers' requests can fill.
    pub fn with_root_lane(mut self, root_requests: mpsc::Sender<Request>) -> Self {
        self.root_requests = root_requests;
        self
    }

    /// Sends one request to the main loop and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, DbusError> {
        Self::send(&self.requests, make).await
    }

    /// As `ask`, for a caller known to be root.
    async fn ask_as_root<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, DbusError> {
        Self::send(&self.root_requests, make).await
    }

    /// A read open to everyone: root's on its lane, others' within their
    /// allowance.
    async fn ask_open<T>(
        &self,
        hdr: Option<&Header<'_>>,
        conn: &Connection,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, DbusError> {
        // No header: the object server reading its own property.
        let Some(hdr) = hdr else {
            return self.ask_as_root(make).await;
        };
        let sender = hdr
            .sender()
            .ok_or_else(|| DbusError::AccessDenied("a call without a sender".into()))?;
        let uid = caller_uid(conn, sender.to_owned().into()).await?;
        if uid == 0 {
            return self.ask_as_root(make).await;
        }
        self.limits
            .admit(uid, std::time::Instant::now())
            .map_err(|wait| {
                DbusError::LimitsExceeded(format!(
                    "too many calls from uid {uid}; try again in {} ms",
                    wait.as_millis().max(1)
                ))
            })?;
        self.ask(make).await
    }

    async fn send<T>(
        lane: &mpsc::Sender<Request>,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, DbusError> {
        let (tx, rx) = oneshot::channel();
        lane.send(make(tx)).await.map_err(|_| main_loop_gone())?;
        let answer = rx.await.map_err(|_| main_loop_gone())?;
        answer.map_err(DbusError::from)
    }
}

impl ManagerService {
    /// The properties' source: a read open to everyone, under its limit.
    async fn status(
        &self,
        hdr: Option<&Header<'_>>,
        conn: &Connection,
    ) -> zbus::fdo::Result<crate::api::DaemonStatus> {
        self.ask_open(hdr, conn, Request::Status)
            .await
            .map_err(|e| match e {
                DbusError::LimitsExceeded(m) => zbus::fdo::Error::LimitsExceeded(m),
                e => zbus::fdo::Error::Failed(e.message()),
            })
    }
}

fn main_loop_gone() -> DbusError {
    DbusError::Failed("the daemon is shutting down".to_owned())
}

/// Refuses the call unless the sender's uid, as the bus daemon knows it, is
/// root's. The bus is asked rather than trusting anything in the message,
/// since only the bus saw the peer's credentials.
async fn require_root(hdr: &Header<'_>, conn: &Connection, what: &str) -> Result<(), DbusError> {
    let denied = || DbusError::AccessDenied(format!("only root may {what}"));
    let sender = hdr.sender().ok_or_else(denied)?;
    match caller_uid(conn, sender.to_owned().into()).await? {
        0 => Ok(()),
        _ => Err(denied()),
    }
}

/// Asks the bus daemon for the Unix uid behind `sender`.
async fn caller_uid(conn: &Connection, sender: BusName<'_>) -> Result<u32, DbusError> {
    let failed = |e: zbus::Error| DbusError::Failed(format!("cannot identify the caller: {e}"));
    let bus = zbus::fdo::DBusProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(failed)?;
    bus.get_connection_unix_user(sender)
        .await
        .map_err(|e| failed(e.into()))
}

#[interface(name = "org.tetragond.Tetragond1.Manager")]
impl ManagerService {
    /// Lists every known policy, including those that failed to load. Open
    /// to every user.
    #[zbus(out_args("policies"))]
    async fn list_policies(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<PolicyInfo>, DbusError> {
        self.ask_open(Some(&hdr), conn, Request::ListPolicies).await
    }

    /// Sets a policy's mode at run time (`enforce` or `monitor`); this wins
    /// over the policy file and its sidecar. `namespace` is empty for a
    /// global policy. Root only.
    async fn set_mode(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
        mode: String,
    ) -> Result<(), DbusError> {
        require_root(&hdr, conn, "set a policy's mode").await?;
        self.ask_as_root(|reply| Request::SetMode {
            key: PolicyKey::new(namespace, name),
            mode,
            reply,
        })
        .await
    }

    /// Validates a policy given as YAML text and writes it into the policy
    /// folder, with a sidecar when `mode` is not empty. Returns the path
    /// written. Root only.
    #[zbus(out_args("path"))]
    async fn add_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        yaml: String,
        mode: String,
    ) -> Result<String, DbusError> {
        require_root(&hdr, conn, "add a policy").await?;
        self.ask_as_root(|reply| Request::AddPolicy { yaml, mode, reply })
            .await
    }

    /// Runs the parse and the compile a load of `yaml` would run, against
    /// the running kernel, and writes nothing: `tetra tp validate`. Open
    /// to every user.
    async fn check_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        yaml: String,
    ) -> Result<(), DbusError> {
        self.ask_open(Some(&hdr), conn, |reply| Request::CheckPolicy {
            yaml,
            reply,
        })
        .await
    }

    /// Removes a policy's file (and sidecar) from the policy folder, which
    /// unloads it. `namespace` is empty for a global policy. Root only.
    async fn delete_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
    ) -> Result<(), DbusError> {
        require_root(&hdr, conn, "delete a policy").await?;
        self.ask_as_root(|reply| Request::DeletePolicy {
            key: PolicyKey::new(namespace, name),
            reply,
        })
        .await
    }

    /// One policy's row, as in ListPolicies. Open to every user.
    #[zbus(out_args("policy"))]
    async fn get_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
    ) -> Result<PolicyInfo, DbusError> {
        self.ask_open(Some(&hdr), conn, |reply| Request::GetPolicy {
            key: PolicyKey::new(namespace, name),
            reply,
        })
        .await
    }

    /// Drops the run-time mode set with SetMode: the sidecar's or the
    /// policy's own mode applies again. Root only.
    async fn reset_mode(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
    ) -> Result<(), DbusError> {
        require_root(&hdr, conn, "reset a policy's mode").await?;
        self.ask_as_root(|reply| Request::ResetMode {
            key: PolicyKey::new(namespace, name),
            reply,
        })
        .await
    }

    /// Enables a policy disabled at run time (stored across restarts). Root only.
    async fn enable_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
    ) -> Result<(), DbusError> {
        require_root(&hdr, conn, "enable a policy").await?;
        self.ask_as_root(|reply| Request::SetEnabled {
            key: PolicyKey::new(namespace, name),
            enabled: true,
            reply,
        })
        .await
    }

    /// Unloads a policy but keeps it listed as disabled (stored across
    /// restarts) until EnablePolicy. Root only.
    async fn disable_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        namespace: String,
        name: String,
    ) -> Result<(), DbusError> {
        require_root(&hdr, conn, "disable a policy").await?;
        self.ask_as_root(|reply| Request::SetEnabled {
            key: PolicyKey::new(namespace, name),
            enabled: false,
            reply,
        })
        .await
    }

    /// The daemon's version.
    #[zbus(property)]
    async fn version(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.status(hdr.as_ref(), conn).await.map(|s| s.version)
    }

    /// The folder the daemon watches.
    #[zbus(property)]
    async fn policy_directory(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.status(hdr.as_ref(), conn)
            .await
            .map(|s| s.policy_directory)
    }

    /// Why the policy folder cannot be read, empty when it can. While it
    /// cannot, nothing is loaded or unloaded and the daemon retries.
    #[zbus(property)]
    async fn policy_directory_error(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.status(hdr.as_ref(), conn)
            .await
            .map(|s| s.policy_directory_error)
    }

    /// Bytes the kernel charges for the daemon's programs and maps, shared
    /// by every policy.
    #[zbus(property)]
    async fn kernel_memory(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u64> {
        self.status(hdr.as_ref(), conn)
            .await
            .map(|s| s.kernel_memory)
    }

    /// What the running kernel offers, as `name=yes|no` entries.
    #[zbus(property)]
    async fn kernel_features(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<Vec<String>> {
        self.status(hdr.as_ref(), conn)
            .await
            .map(|s| s.kernel_features)
    }

    /// Number of policies enabled.
    #[zbus(property)]
    async fn policies_enabled(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u32> {
        self.status(hdr.as_ref(), conn).await.map(|s| s.enabled)
    }

    /// Number of policies that failed to load.
    #[zbus(property)]
    async fn policies_load_error(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u32> {
        self.status(hdr.as_ref(), conn).await.map(|s| s.load_errors)
    }

    /// Number of policies disabled.
    #[zbus(property)]
    async fn policies_disabled(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u32> {
        self.status(hdr.as_ref(), conn).await.map(|s| s.disabled)
    }

    /// Rescans the policy folder now. Returns a one-line summary. Root only.
    #[zbus(out_args("summary"))]
    async fn reload(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, DbusError> {
        require_root(&hdr, conn, "reload the policies").await?;
        self.ask_as_root(Request::Reload).await
    }
}

/// Connects to `bus`, serves the Manager object, with `beside` (another
/// interface on it), at [`OBJECT_PATH`], then takes the well-known name
/// [`BUS_NAME`], in that order so that no client can find the name before
/// the object answers. Nothing else may await the object server while a
/// call waits on the main loop (see `PolicyObjects::spawn`).
///
/// Calls are answered on zbus's own tasks for as long as the returned
/// connection lives; drop it to stop serving. Fails if the bus is
/// unreachable or another process owns the name (`zbus::Error::NameTaken`).
pub async fn serve_with(
    bus: &BusChoice,
    service: ManagerService,
    beside: impl zbus::object_server::Interface,
) -> zbus::Result<Connection> {
    finish(
        bus.builder()?
            .serve_at(OBJECT_PATH, service)?
            .serve_at(OBJECT_PATH, beside)?,
    )
    .await
}

/// [`serve_with`] without another interface, for tests of the Manager.
#[cfg(test)]
pub(crate) async fn serve(bus: &BusChoice, service: ManagerService) -> zbus::Result<Connection> {
    finish(bus.builder()?.serve_at(OBJECT_PATH, service)?).await
}

async fn finish(builder: Builder<'_>) -> zbus::Result<Connection> {
    builder
        // Policy objects live below the Manager and come and go with policies.
        .serve_at(OBJECT_PATH, zbus::fdo::ObjectManager)?
        .name(BUS_NAME)?
        // zbus's default lets a later process take the name over (and this
        // one give it up); a second daemon must fail instead.
        .allow_name_replacements(false)
        .replace_existing_names(false)
        .build()
        .await
}

/// The client side of the Manager interface; `ManagerProxy::new(&conn)`
/// talks to the daemon at its well-known name and path.
#[zbus::proxy(
    interface = "org.tetragond.Tetragond1.Manager",
    default_service = "org.tetragond.Tetragond1",
    default_path = "/org/tetragond/Tetragond1"
)]
pub trait Manager {
    fn list_policies(&self) -> Result<Vec<PolicyInfo>, DbusError>;
    fn set_mode(&self, namespace: &str, name: &str, mode: &str) -> Result<(), DbusError>;
    fn add_policy(&self, yaml: &str, mode: &str) -> Result<String, DbusError>;
    fn check_policy(&self, yaml: &str) -> Result<(), DbusError>;
    fn delete_policy(&self, namespace: &str, name: &str) -> Result<(), DbusError>;
    fn reload(&self) -> Result<String, DbusError>;
    fn get_policy(&self, namespace: &str, name: &str) -> Result<PolicyInfo, DbusError>;
    fn reset_mode(&self, namespace: &str, name: &str) -> Result<(), DbusError>;
    fn enable_policy(&self, namespace: &str, name: &str) -> Result<(), DbusError>;
    fn disable_policy(&self, namespace: &str, name: &str) -> Result<(), DbusError>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn policy_directory(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn policy_directory_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn kernel_features(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn kernel_memory(&self) -> zbus::Result<u64>;
}

/// A private bus and a fake daemon for tests of this module and of the CLI.
#[cfg(test)]
pub(crate) mod testbus {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::mpsc;

    use super::BusChoice;
    use crate::api::{ApiError, PolicyInfo, Request};
    use crate::policy::PolicyKey;

    const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";

    /// A `dbus-daemon` of our own, killed on drop. Its policy lets any user
    /// connect, like the system bus, so tests can call as a non-root user.
    pub(crate) struct TestBus {
        child: Child,
        dir: PathBuf,
        pub(crate) address: String,
    }

    impl TestBus {
        pub(crate) fn start() -> TestBus {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("tetragond-dbus-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the test bus folder");
            // Other users must reach the socket for the access-control test.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .expect("chmod the test bus folder");
            let config = dir.join("bus.conf");
            std::fs::write(&config, bus_config(&dir.join("bus").display().to_string()))
                .expect("write the test bus config");
            // Its chatter (e.g. about fd limits) goes to a log, shown if it
            // fails to start.
            let log = std::fs::File::create(dir.join("bus.log")).expect("create the bus log");
            let mut child = Command::new(DBUS_DAEMON)
                .arg(format!("--config-file={}", config.display()))
                .args(["--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {DBUS_DAEMON} (tests need it; apt-get install dbus-daemon): {e}")
                });
            let address = read_address(&mut child, &dir);
            TestBus {
                child,
                dir,
                address,
            }
        }

        pub(crate) fn choice(&self) -> BusChoice {
            BusChoice::Address(self.address.clone())
        }
    }

    impl Drop for TestBus {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn read_address(child: &mut Child, dir: &Path) -> String {
        let stdout = child.stdout.take().expect("dbus-daemon stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the address dbus-daemon prints");
        let address = line.trim().to_owned();
        if address.is_empty() {
            let log = std::fs::read_to_string(dir.join("bus.log")).unwrap_or_default();
            panic!("dbus-daemon printed no address; it said:\n{log}");
        }
        address
    }

    fn bus_config(socket: &str) -> String {
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#
        )
    }

    pub(crate) fn row(id: u64, namespace: &str, name: &str, mode: &str) -> PolicyInfo {
        PolicyInfo {
            id,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            domain: "static".to_owned(),
            state: "enabled".to_owned(),
            filter_id: 0,
            sensors: vec!["generic_tracepoint".to_owned()],
            kernel_memory: 2_400_000,
            mode: mode.to_owned(),
            mode_source: "policy".to_owned(),
            npost: 5,
            nenforce: 1,
            nmonitor: 0,
            nratelimited: 0,
            error: String::new(),
            file: format!("/etc/tetragond/policies/{name}.yaml"),
        }
    }

    /// `pizza` can change mode, `calm` is monitor_only, `web` is namespaced.
    pub(crate) fn sample_rows() -> Vec<PolicyInfo> {
        vec![
            row(1, "", "pizza", "monitor"),
            row(2, "", "calm", "monitor_only"),
            row(3, "prod", "web", "enforce"),
        ]
    }

    /// A stand-in for the daemon's main loop, answering from a table.
    pub(crate) fn fake_daemon(rows: Vec<PolicyInfo>) -> mpsc::Sender<Request> {
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut table: HashMap<PolicyKey, PolicyInfo> = rows
                .into_iter()
                .map(|r| (PolicyKey::new(&r.namespace, &r.name), r))
                .collect();
            while let Some(request) = rx.recv().await {
                answer(&mut table, request);
            }
        });
        tx
    }

    fn answer(table: &mut HashMap<PolicyKey, PolicyInfo>, request: Request) {
        // A dropped reply only means the caller went away.
        match request {
            Request::ListPolicies(reply) => {
                let mut rows: Vec<_> = table.values().cloned().collect();
                rows.sort_by_key(|r| r.id);
                let _ = reply.send(Ok(rows));
            }
            Request::SetMode { key, mode, reply } => {
                let _ = reply.send(set_mode(table, &key, mode));
            }
            Request::AddPolicy {
                yaml,
                mode: _,
                reply,
            } => {
                let _ = reply.send(if yaml.contains("kind: TracingPolicy") {
                    Ok("/etc/tetragond/policies/new.yaml".to_owned())
                } else {
                    Err(ApiError::InvalidPolicy(
                        "<yaml>:1:1: missing kind".to_owned(),
                    ))
                });
            }
            // The fake compile: a policy naming a hook this "kernel"
            // lacks is refused.
            Request::CheckPolicy { yaml, reply } => {
                let _ = reply.send(if yaml.contains("no-such-hook") {
                    Err(ApiError::InvalidPolicy(
                        "kprobes[0] no-such-hook: no such kernel function".to_owned(),
                    ))
                } else {
                    Ok(())
                });
            }
            Request::DeletePolicy { key, reply } => {
                let found = table.remove(&key).is_some();
                let _ = reply.send(if found {
                    Ok(())
                } else {
                    Err(ApiError::NotFound(format!(
                        "policy {} not found",
                        key.name()
                    )))
                });
            }
            Request::Reload(reply) => {
                let _ = reply.send(Ok(format!("{} policies loaded", table.len())));
            }
            Request::GetPolicy { key, reply } => {
                let row = table.get(&key).cloned();
                let _ =
                    reply.send(row.ok_or_else(|| {
                        ApiError::NotFound(format!("policy {} not found", key.name()))
                    }));
            }
            Request::ResetMode { key, reply } => {
                let row = table.get_mut(&key);
                let _ = reply.send(match row {
                    Some(row) => {
                        row.mode_source = "policy".to_owned();
                        Ok(())
                    }
                    None => Err(ApiError::NotFound(format!(
                        "policy {} not found",
                        key.name()
                    ))),
                });
            }
            Request::SetEnabled {
                key,
                enabled,
                reply,
            } => {
                let row = table.get_mut(&key);
                let _ = reply.send(match row {
                    Some(row) => {
                        row.state = if enabled { "enabled" } else { "disabled" }.to_owned();
                        Ok(())
                    }
                    None => Err(ApiError::NotFound(format!(
                        "policy {} not found",
                        key.name()
                    ))),
                });
            }
            Request::Status(reply) => {
                let _ = reply.send(Ok(crate::api::DaemonStatus {
                    version: "test".to_owned(),
                    ..Default::default()
                }));
            }
        }
    }

    fn set_mode(
        table: &mut HashMap<PolicyKey, PolicyInfo>,
        key: &PolicyKey,
        mode: String,
    ) -> Result<(), ApiError> {
        let row = table
            .get_mut(key)
            .ok_or_else(|| ApiError::NotFound(format!("policy {} not found", key.name())))?;
        if row.mode == "monitor_only" {
            return Err(ApiError::MonitorOnly(
                "cannot set policy mode on a policy that is monitor only".to_owned(),
            ));
        }
        if mode != "enforce" && mode != "monitor" {
            return Err(ApiError::InvalidMode(format!("invalid mode: {mode:?}")));
        }
        row.mode = mode;
        row.mode_source = "runtime".to_owned();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    use zbus::object_server::Interface;
    use zbus::DBusError as _;

    use super::testbus::{fake_daemon, sample_rows, TestBus};
    use super::*;
    use crate::api::{ERROR_PREFIX, MANAGER_INTERFACE};

    /// A served fake daemon and a client connection to it. Fields drop in
    /// order, the bus last.
    struct Fixture {
        client: Connection,
        _server: Connection,
        bus: TestBus,
    }

    impl Fixture {
        async fn start() -> Fixture {
            let bus = TestBus::start();
            let server = serve(
                &bus.choice(),
                ManagerService::new(fake_daemon(sample_rows())),
            )
            .await
            .expect("serve on the test bus");
            let client = bus
                .choice()
                .connect()
                .await
                .expect("connect to the test bus");
            Fixture {
                client,
                _server: server,
                bus,
            }
        }

        async fn proxy(&self) -> ManagerProxy<'static> {
            ManagerProxy::new(&self.client)
                .await
                .expect("build the Manager proxy")
        }

        /// Calls a method by hand, to see the raw D-Bus error name.
        async fn raw_error(&self, method: &str, args: &(&str, &str, &str)) -> (String, String) {
            let err = self
                .client
                .call_method(
                    Some(BUS_NAME),
                    OBJECT_PATH,
                    Some(MANAGER_INTERFACE),
                    method,
                    args,
                )
                .await
                .expect_err("the call should fail");
            match err {
                zbus::Error::MethodError(name, desc, _) => {
                    (name.as_str().to_owned(), desc.unwrap_or_default())
                }
                other => panic!("expected a D-Bus method error, got {other:?}"),
            }
        }

        /// Runs busctl against the test bus, optionally as `nobody`.
        async fn busctl(&self, as_nobody: bool, args: &[&str]) -> Output {
            let mut cmd = if as_nobody {
                let mut c = Command::new("/usr/bin/setpriv");
                c.args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "/usr/bin/busctl",
                ]);
                c
            } else {
                Command::new("/usr/bin/busctl")
            };
            cmd.arg(format!("--address={}", self.bus.address))
                .args(args);
            // The server answers on this runtime; don't block it.
            tokio::task::spawn_blocking(move || cmd.output().expect("run busctl"))
                .await
                .expect("busctl task")
        }
    }

    const SET_MODE_PIZZA: [&str; 9] = [
        "call",
        BUS_NAME,
        OBJECT_PATH,
        MANAGER_INTERFACE,
        "SetMode",
        "sss",
        "",
        "pizza",
        "enforce",
    ];

    #[test]
    fn literals_match_the_api_constants() {
        assert_eq!(ManagerService::name().as_str(), MANAGER_INTERFACE);
        let all = [
            ApiError::NotFound("m".into()),
            ApiError::InvalidMode("m".into()),
            ApiError::MonitorOnly("m".into()),
            ApiError::InvalidPolicy("m".into()),
            ApiError::AlreadyExists("m".into()),
            ApiError::AccessDenied("m".into()),
            ApiError::Failed("m".into()),
        ];
        for api in all {
            let want = format!("{ERROR_PREFIX}.{}", api.kind());
            let dbus = DbusError::from(api);
            assert_eq!(dbus.name().as_str(), want);
            assert_eq!(dbus.description(), Some("m"));
            assert_eq!(dbus.message(), "m");
        }
    }

    #[test]
    fn bus_choice_parses() {
        assert_eq!("system".parse(), Ok(BusChoice::System));
        assert_eq!("session".parse(), Ok(BusChoice::Session));
        assert_eq!(
            "unix:path=/tmp/x".parse(),
            Ok(BusChoice::Address("unix:path=/tmp/x".to_owned()))
        );
        assert_eq!(
            BusChoice::Address("unix:path=/tmp/x".into()).to_string(),
            "unix:path=/tmp/x"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn list_returns_rows() {
        let fx = Fixture::start().await;
        let rows = fx
            .proxy()
            .await
            .list_policies()
            .await
            .expect("ListPolicies");
        assert_eq!(rows, sample_rows());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_mode_on_unknown_policy_is_not_found() {
        let fx = Fixture::start().await;
        let (name, msg) = fx.raw_error("SetMode", &("", "nope", "enforce")).await;
        assert_eq!(name, "org.tetragond.Tetragond1.Error.NotFound");
        assert_eq!(msg, "policy nope not found");
        // The proxy maps the name back to the variant.
        let err = fx
            .proxy()
            .await
            .set_mode("", "nope", "enforce")
            .await
            .unwrap_err();
        assert!(
            matches!(err, DbusError::NotFound(ref m) if m == "policy nope not found"),
            "{err:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn monitor_only_and_invalid_mode_propagate() {
        let fx = Fixture::start().await;
        let (name, msg) = fx.raw_error("SetMode", &("", "calm", "enforce")).await;
        assert_eq!(name, "org.tetragond.Tetragond1.Error.MonitorOnly");
        assert_eq!(
            msg,
            "cannot set policy mode on a policy that is monitor only"
        );
        let (name, _) = fx.raw_error("SetMode", &("", "pizza", "loud")).await;
        assert_eq!(name, "org.tetragond.Tetragond1.Error.InvalidMode");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_methods_forward() {
        let fx = Fixture::start().await;
        let proxy = fx.proxy().await;
        let path = proxy
            .add_policy("kind: TracingPolicy\n", "monitor")
            .await
            .expect("AddPolicy");
        assert_eq!(path, "/etc/tetragond/policies/new.yaml");
        let err = proxy.add_policy("junk", "").await.unwrap_err();
        assert!(matches!(err, DbusError::InvalidPolicy(_)), "{err:?}");
        proxy
            .delete_policy("prod", "web")
            .await
            .expect("DeletePolicy");
        let err = proxy.delete_policy("prod", "web").await.unwrap_err();
        assert!(matches!(err, DbusError::NotFound(_)), "{err:?}");
        assert_eq!(proxy.reload().await.expect("Reload"), "2 policies loaded");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busctl_set_mode_works() {
        let fx = Fixture::start().await;
        let out = fx.busctl(false, &SET_MODE_PIZZA).await;
        assert!(
            out.status.success(),
            "busctl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = fx
            .proxy()
            .await
            .list_policies()
            .await
            .expect("ListPolicies");
        let pizza = rows
            .iter()
            .find(|r| r.name == "pizza")
            .expect("pizza listed");
        assert_eq!(
            (pizza.mode.as_str(), pizza.mode_source.as_str()),
            ("enforce", "runtime")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn non_root_may_list_but_not_change() {
        let fx = Fixture::start().await;
        let out = fx.busctl(true, &SET_MODE_PIZZA).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nobody changed a mode");
        assert!(
            stderr.contains("only root may set a policy's mode"),
            "busctl said: {stderr}"
        );
        let list = [
            "call",
            BUS_NAME,
            OBJECT_PATH,
            MANAGER_INTERFACE,
            "ListPolicies",
        ];
        let out = fx.busctl(true, &list).await;
        assert!(
            out.status.success(),
            "nobody cannot list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = fx
            .proxy()
            .await
            .list_policies()
            .await
            .expect("ListPolicies");
        assert_eq!(rows, sample_rows(), "the refused call changed something");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn introspection_names_the_arguments() {
        let fx = Fixture::start().await;
        let xml = zbus::fdo::IntrospectableProxy::builder(&fx.client)
            .destination(BUS_NAME)
            .expect("destination")
            .path(OBJECT_PATH)
            .expect("path")
            .build()
            .await
            .expect("introspectable proxy")
            .introspect()
            .await
            .expect("Introspect");
        for needle in [
            "<interface name=\"org.tetragond.Tetragond1.Manager\">",
            "<method name=\"SetMode\">",
            "name=\"namespace\"",
            "name=\"policies\"",
            "name=\"path\"",
            "name=\"summary\"",
            "name=\"yaml\"",
        ] {
            assert!(xml.contains(needle), "introspection lacks {needle}:\n{xml}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gone_main_loop_is_failed() {
        let bus = TestBus::start();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let _server = serve(&bus.choice(), ManagerService::new(tx))
            .await
            .expect("serve on the test bus");
        let client = bus.choice().connect().await.expect("connect");
        let err = ManagerProxy::new(&client)
            .await
            .expect("proxy")
            .list_policies()
            .await
            .unwrap_err();
        assert!(matches!(err, DbusError::Failed(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn second_server_cannot_take_the_name() {
        let fx = Fixture::start().await;
        let err = serve(&fx.bus.choice(), ManagerService::new(fake_daemon(vec![])))
            .await
            .unwrap_err();
        assert!(matches!(err, zbus::Error::NameTaken), "{err:?}");
    }
}
