//! Prometheus metrics over a tiny HTTP/1.0 responder (`GET /metrics`).
//!
//! Per-policy counters come from a snapshot of the policy list that the
//! main loop publishes each second; exporter counters are read directly
//! from the shared atomics. Nothing here ever waits on the main loop.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{api::PolicyInfo, export::ExportStats};

/// A request head bigger than this is refused; a client slower than the
/// timeout is dropped. The responder serves scrapers, not browsers.
const MAX_REQUEST: usize = 8 * 1024;
/// Scrapers served at once; more are closed at once, so a flood of
/// connections cannot exhaust the daemon's descriptors.
pub const MAX_CONNECTIONS: usize = 32;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("metrics address {address}: {source}")]
pub struct MetricsError {
    pub address: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `address` and serves on a task of its own.
pub async fn serve(
    address: SocketAddr,
    stats: Arc<ExportStats>,
    policies: watch::Receiver<Vec<PolicyInfo>>,
) -> Result<SocketAddr, MetricsError> {
    if !address.ip().is_loopback() {
        tracing::warn!("metrics are served on {address}, which is not a loopback address");
    }
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError { address, source })?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(conn);
                continue;
            };
            let body = render(&stats, &policies.borrow());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLIENT_TIMEOUT, respond(conn, body)).await;
                drop(slot);
            });
        }
    });
    Ok(bound)
}

async fn respond(mut conn: TcpStream, body: String) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let first = String::from_utf8_lossy(&head);
    let mut words = first.split_whitespace();
    let (method, target) = (words.next(), words.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let (status, ctype, body) = match (method, path) {
        (Some("GET" | "HEAD"), Some("/metrics")) => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        (Some("GET" | "HEAD"), _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != Some("HEAD") {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out).await?;
    conn.shutdown().await
}

/// `a"b\` → `a\"b\\`: Prometheus label value escaping.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(stats: &ExportStats, policies: &[PolicyInfo]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per_policy = |f: fn(&PolicyInfo) -> u64| -> Vec<(String, u64)> {
        policies
            .iter()
            .map(|p| {
                (
                    format!(
                        "{{policy=\"{}\",namespace=\"{}\"}}",
                        label(&p.name),
                        label(&p.namespace)
                    ),
                    f(p),
                )
            })
            .collect()
    };
    family(
        "tetragond_policy_events_posted_total",
        "counter",
        "Events posted by the policy's kernel programs (NPOST).",
        per_policy(|p| p.npost),
    );
    family(
        "tetragond_policy_actions_enforced_total",
        "counter",
        "Enforcement actions carried out (NENFORCE).",
        per_policy(|p| p.nenforce),
    );
    family(
        "tetragond_policy_actions_monitored_total",
        "counter",
        "Enforcement actions elided by monitor mode (NMONITOR).",
        per_policy(|p| p.nmonitor),
    );
    family(
        "tetragond_policy_events_rate_limited_total",
        "counter",
        "Events a Post rateLimit kept from being posted (NRATELIMITED).",
        per_policy(|p| p.nratelimited),
    );
    family(
        "tetragond_policy_kernel_memory_bytes",
        "gauge",
        "Kernel memory charged to the policy (KERNELMEMORY).",
        per_policy(|p| p.kernel_memory),
    );
    family(
        "tetragond_policy_info",
        "gauge",
        "Always 1; the policy's state and mode as labels.",
        policies
            .iter()
            .map(|p| {
                (
                    format!(
                        "{{policy=\"{}\",namespace=\"{}\",state=\"{}\",mode=\"{}\"}}",
                        label(&p.name),
                        label(&p.namespace),
                        label(&p.state),
                        label(&p.mode)
                    ),
                    1,
                )
            })
            .collect(),
    );
    family(
        "tetragond_events_exported_total",
        "counter",
        "Events written to the events file, by kind.",
        stats
            .exported_by_kind()
            .into_iter()
            .map(|(k, n)| (format!("{{kind=\"{k}\"}}"), n))
            .collect(),
    );
    family(
        "tetragond_events_dropped_total",
        "counter",
        "Events that never reached the events file, by reason.",
        stats
            .dropped_by_reason()
            .into_iter()
            .map(|(r, n)| (format!("{{reason=\"{}\"}}", r.as_str()), n))
            .collect(),
    );
    let gauge = |v: &std::sync::atomic::AtomicU64| vec![(String::new(), v.load(Relaxed))];
    family(
        "tetragond_stream_lines_dropped_total",
        "counter",
        "Lines live-stream clients were too slow to take (they are in the file).",
        gauge(&stats.stream_dropped),
    );
    family(
        "tetragond_stream_clients",
        "gauge",
        "Connected live-stream clients.",
        gauge(&stats.stream_clients),
    );
    family(
        "tetragond_events_file_rotations_total",
        "counter",
        "Rotations of the events file.",
        gauge(&stats.rotations),
    );
    let outbound = &stats.outbound;
    family(
        "tetragond_action_requests_total",
        "counter",
        "GetUrl and DnsLookup requests, by outcome (dropped: the queue was full).",
        [
            ("sent", &outbound.sent),
            ("failed", &outbound.failed),
            ("dropped", &outbound.dropped),
        ]
        .into_iter()
        .map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), n.load(Relaxed)))
        .collect(),
    );
    family(
        "tetragond_process_cache_entries",
        "gauge",
        "Processes in the process cache.",
        gauge(&stats.process_cache_entries),
    );
    family(
        "tetragond_reloads_total",
        "counter",
        "Rescans of the policy folder (file changes, SIGHUP, tetra tp reload), by outcome.",
        vec![
            ("{outcome=\"ok\"}".into(), stats.reloads_ok.load(Relaxed)),
            (
                "{outcome=\"errors\"}".into(),
                stats.reloads_with_errors.load(Relaxed),
            ),
        ],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::DropReason;

    fn policy(name: &str) -> PolicyInfo {
        PolicyInfo {
            id: 1,
            name: name.into(),
            namespace: String::new(),
            domain: "static".into(),
            state: "enabled".into(),
            filter_id: 0,
            sensors: vec![],
            kernel_memory: 4096,
            mode: "enforce".into(),
            mode_source: "policy".into(),
            npost: 7,
            nenforce: 3,
            nmonitor: 0,
            nratelimited: 0,
            error: String::new(),
            file: String::new(),
        }
    }

    #[test]
    fn renders_policies_and_drops() {
        let stats = ExportStats::default();
        stats.count_dropped(DropReason::RingBuffer, 5);
        stats.count_exported("process_kprobe");
        let text = render(&stats, &[policy("deny\"x")]);
        assert!(text.contains(
            "tetragond_policy_events_posted_total{policy=\"deny\\\"x\",namespace=\"\"} 7\n"
        ));
        assert!(text.contains(
            "tetragond_policy_actions_enforced_total{policy=\"deny\\\"x\",namespace=\"\"} 3\n"
        ));
        assert!(text.contains("tetragond_events_dropped_total{reason=\"ring_buffer\"} 5\n"));
        assert!(text.contains("tetragond_events_exported_total{kind=\"process_kprobe\"} 1\n"));
        assert!(text.contains("# TYPE tetragond_reloads_total counter\n"));
        assert!(text.contains(
            "tetragond_policy_kernel_memory_bytes{policy=\"deny\\\"x\",namespace=\"\"} 4096\n"
        ));
    }

    #[tokio::test]
    async fn serves_http() {
        let stats = Arc::new(ExportStats::default());
        let (_tx, rx) = watch::channel(vec![policy("p")]);
        let addr = serve("127.0.0.1:0".parse().expect("addr"), stats, rx)
            .await
            .expect("bind");
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .expect("send");
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");
        assert!(reply.contains("tetragond_policy_events_posted_total{policy=\"p\""));
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .await
            .expect("send");
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.0 404"), "{reply}");
    }
}
