//! What systemd is about to do with a unit: tells a stop from a restart.
//!
//! `systemctl restart` (and the package's upgrade, which restarts) queues a
//! job of type `restart` for the unit and then sends SIGTERM; `systemctl
//! stop` queues a `stop` job. The job is the unit's `Job` property on
//! org.freedesktop.systemd1, and its `JobType` says which, so a daemon that
//! receives SIGTERM can ask (by its own pid) whether it will be started
//! again, and a stop helper can ask about the unit by name.

use std::time::Duration;

use zbus::{proxy::CacheProperties, zvariant::OwnedObjectPath, Connection, Proxy};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const JOB: &str = "org.freedesktop.systemd1.Job";

/// How long systemd gets to answer; it answers while it waits for a stop.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Which unit to ask about.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// The unit whose cgroup holds this process id (the daemon's own).
    Pid(u32),
    Name(&'a str),
}

/// A unit as systemd sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// The unit's name (`Id`).
    pub id: String,
    /// `ActiveState`: active, reloading, inactive, failed, activating,
    /// deactivating.
    pub active_state: String,
    /// `JobType` of the job pending for the unit, if any.
    pub job: Option<String>,
}

/// Job types after which the unit runs again. A `restart` job keeps that
/// type while the stop half runs, then becomes `start`; `try-restart` and
/// `reload-or-start` are how `systemctl try-restart`/`reload-or-restart`
/// can show up.
pub fn starts_again(job_type: &str) -> bool {
    matches!(
        job_type,
        "start" | "restart" | "try-restart" | "reload-or-start"
    )
}

impl UnitState {
    /// A job that will (re)start the unit is pending.
    pub fn restart_pending(&self) -> bool {
        self.job.as_deref().is_some_and(starts_again)
    }

    /// The unit runs, or is about to: a start or restart job is pending,
    /// or it is active or activating (which includes waiting for an
    /// automatic restart after a crash) with no stop job queued.
    pub fn running_or_starting(&self) -> bool {
        self.restart_pending()
            || (self.job.as_deref() != Some("stop")
                && matches!(
                    self.active_state.as_str(),
                    "active" | "activating" | "reloading"
                ))
    }
}

/// Asks systemd on the system bus (bounded by [`TIMEOUT`]).
pub async fn query(which: Which<'_>) -> zbus::Result<UnitState> {
    match tokio::time::timeout(TIMEOUT, query_unbounded(which)).await {
        Ok(r) => r,
        Err(_) => Err(zbus::Error::Failure(format!(
            "systemd did not answer within {TIMEOUT:?}"
        ))),
    }
}

async fn query_unbounded(which: Which<'_>) -> zbus::Result<UnitState> {
    let conn = Connection::system().await?;
    let manager = Proxy::new(&conn, SYSTEMD, MANAGER_PATH, MANAGER).await?;
    let unit: OwnedObjectPath = match which {
        Which::Pid(pid) => manager.call("GetUnitByPID", &(pid,)).await?,
        Which::Name(name) => manager.call("LoadUnit", &(name,)).await?,
    };
    let unit = properties(&conn, unit, UNIT).await?;
    let id: String = unit.get_property("Id").await?;
    let active_state: String = unit.get_property("ActiveState").await?;
    let (job_id, job_path): (u32, OwnedObjectPath) = unit.get_property("Job").await?;
    let job = if job_id == 0 {
        None
    } else {
        // The job may end between the two calls: then there is none.
        match properties(&conn, job_path, JOB).await {
            Ok(job) => job.get_property::<String>("JobType").await.ok(),
            Err(_) => None,
        }
    };
    Ok(UnitState {
        id,
        active_state,
        job,
    })
}

async fn properties<'a>(
    conn: &Connection,
    path: OwnedObjectPath,
    interface: &'static str,
) -> zbus::Result<Proxy<'a>> {
    zbus::proxy::Builder::new(conn)
        .destination(SYSTEMD)?
        .path(path)?
        .interface(interface)?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, job: Option<&str>) -> UnitState {
        UnitState {
            id: "tetragond.service".into(),
            active_state: active.into(),
            job: job.map(Into::into),
        }
    }

    #[test]
    fn a_restart_is_told_from_a_stop() {
        // SIGTERM from `systemctl restart` (and the package's upgrade).
        assert!(state("deactivating", Some("restart")).restart_pending());
        assert!(state("deactivating", Some("try-restart")).restart_pending());
        // SIGTERM from `systemctl stop`, `systemctl kill`, shutdown.
        assert!(!state("deactivating", Some("stop")).restart_pending());
        assert!(!state("deactivating", None).restart_pending());
        assert!(!state("active", Some("reload")).restart_pending());
    }

    #[test]
    fn running_or_about_to() {
        assert!(state("active", None).running_or_starting());
        // Waiting for Restart= after a crash.
        assert!(state("activating", None).running_or_starting());
        // The stop half of a restart is done, the start is queued.
        assert!(state("inactive", Some("start")).running_or_starting());
        assert!(!state("inactive", None).running_or_starting());
        assert!(!state("failed", None).running_or_starting());
        assert!(!state("deactivating", Some("stop")).running_or_starting());
        assert!(!state("activating", Some("stop")).running_or_starting());
    }
}
