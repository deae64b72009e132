//! GetUrl and DnsLookup: the requests the daemon makes when an event of a
//! selector with those actions arrives. As in Tetragon they are fire and
//! forget (nothing waits for them, their answer is not read); unlike a
//! kernel action they cost the daemon a request each, so they run on a few
//! worker threads behind a bounded queue: a process that makes the hook
//! fire in a loop fills the queue, and what does not fit is dropped and
//! counted, never waited for (the ring buffer reader must not stall).

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use crate::compile::DaemonAction;

/// Requests waiting for a worker at most; more are dropped.
pub const QUEUE: usize = 64;
/// Requests in progress at once.
const WORKERS: usize = 2;
/// A request's whole time (connect, TLS, answer) at most.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Tetragon's resolver for DnsLookup (it asks for A records too).
pub const DEFAULT_DNS_SERVER: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 53));

/// What became of the requests asked for.
#[derive(Debug, Default)]
pub struct OutboundStats {
    /// Done, whatever the answer.
    pub sent: AtomicU64,
    /// Could not be made (no route, refused, timed out).
    pub failed: AtomicU64,
    /// Not made: the queue was full.
    pub dropped: AtomicU64,
}

/// The queue the workers take requests from, with the workers started at
/// the first request (most hosts never make one).
pub struct Outbound {
    dns_server: SocketAddr,
    stats: Arc<OutboundStats>,
    queue: OnceLock<Option<SyncSender<DaemonAction>>>,
}

impl Outbound {
    /// DnsLookup queries go to `dns_server`.
    pub fn new(dns_server: SocketAddr, stats: Arc<OutboundStats>) -> Outbound {
        Outbound {
            dns_server,
            stats,
            queue: OnceLock::new(),
        }
    }

    /// Queues `action`; never waits.
    pub fn request(&self, action: &DaemonAction) {
        let queue = self.queue.get_or_init(|| {
            self.spawn()
                .inspect_err(|e| tracing::error!("GetUrl/DnsLookup workers: {e}"))
                .ok()
        });
        let Some(queue) = queue else {
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        };
        match queue.try_send(action.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let before = self.stats.dropped.fetch_add(1, Relaxed);
                if before == 0 || before.is_power_of_two() {
                    tracing::warn!(
                        "GetUrl/DnsLookup requests are coming faster than they can be made: {} dropped so far",
                        before + 1
                    );
                }
            }
            // The workers are gone only if they panicked: counted the same.
            Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    fn spawn(&self) -> io::Result<SyncSender<DaemonAction>> {
        let (queue, requests) = mpsc::sync_channel(QUEUE);
        let requests = Arc::new(Mutex::new(requests));
        let agent = http_agent();
        for i in 0..WORKERS {
            let worker = Worker {
                requests: requests.clone(),
                agent: agent.clone(),
                dns_server: self.dns_server,
                stats: self.stats.clone(),
            };
            std::thread::Builder::new()
                .name(format!("outbound-{i}"))
                .spawn(move || worker.run())?;
        }
        Ok(queue)
    }
}

fn http_agent() -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    // The system's trust store, as Go's http.Get (Tetragon) uses: a CA the
    // administrator added is trusted, the bundled list is not used.
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(TIMEOUT))
        // Any answer is an answer: the request was made.
        .http_status_as_error(false)
        .build()
        .into()
}

struct Worker {
    requests: Arc<Mutex<Receiver<DaemonAction>>>,
    agent: ureq::Agent,
    dns_server: SocketAddr,
    stats: Arc<OutboundStats>,
}

impl Worker {
    fn run(self) {
        loop {
            let next = match self.requests.lock() {
                Ok(requests) => requests.recv(),
                Err(_) => return,
            };
            let Ok(action) = next else { return };
            let result = match &action {
                DaemonAction::GetUrl(url) => get(&self.agent, url).map_err(|e| e.to_string()),
                DaemonAction::DnsLookup(fqdn) => {
                    dns_lookup(self.dns_server, fqdn).map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(()) => self.stats.sent.fetch_add(1, Relaxed),
                Err(e) => {
                    tracing::debug!("{action:?}: {e}");
                    self.stats.failed.fetch_add(1, Relaxed)
                }
            };
        }
    }
}

fn get(agent: &ureq::Agent, url: &str) -> Result<(), ureq::Error> {
    // The body is not read: the server saw the request.
    agent.get(url).call().map(drop)
}

/// One A query for `fqdn`, sent to `server`; the answer, if one comes
/// within the timeout, is not read beyond its arrival.
fn dns_lookup(server: SocketAddr, fqdn: &str) -> io::Result<()> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let query = a_query(query_id(), fqdn)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a domain name"))?;
    socket.send_to(&query, server)?;
    let mut answer = [0u8; 512];
    socket.recv_from(&mut answer).map(drop)
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

/// A DNS query (RFC 1035 4.1) for the A records of `fqdn`, recursion
/// desired. Our own: one fixed-shape message, whose answer is not read,
/// does not need a DNS library. None when `fqdn` is not a domain name.
pub fn a_query(id: u16, fqdn: &str) -> Option<Vec<u8>> {
    let name = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query, recursion desired; one question.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() > 12 + 255 {
        return None;
    }
    // QTYPE A, QCLASS IN.
    q.extend_from_slice(&[0, 1, 0, 1]);
    Some(q)
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
    };

    use super::*;

    #[test]
    fn a_query_is_laid_out_as_rfc_1035_says() {
        let q = a_query(0x1234, "canary.example.").unwrap();
        let mut expected = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x06canary\x07example\x00\x00\x01\x00\x01");
        assert_eq!(q, expected);
        assert!(a_query(1, "a..b").is_none());
        assert!(a_query(1, &"a".repeat(64)).is_none());
        assert!(a_query(1, &"a.".repeat(128)).is_none());
    }

    #[test]
    fn requests_reach_their_servers() {
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
        dns.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let stats = Arc::new(OutboundStats::default());
        let outbound = Outbound::new(dns.local_addr().unwrap(), stats.clone());
        let url = format!("http://{}/canary?hit=1", http.local_addr().unwrap());
        outbound.request(&DaemonAction::GetUrl(url));
        outbound.request(&DaemonAction::DnsLookup("canary.example.test".into()));

        let (mut conn, _) = http.accept().unwrap();
        let mut head = [0u8; 256];
        let n = conn.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("GET /canary?hit=1 HTTP/1.1\r\n"), "{head}");
        conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();

        let mut query = [0u8; 512];
        let (n, from) = dns.recv_from(&mut query).unwrap();
        assert_eq!(
            &query[2..n],
            &a_query(0, "canary.example.test").unwrap()[2..]
        );
        dns.send_to(&query[..n], from).unwrap();
        wait_for_count(&stats, &stats.sent, 2);
    }

    /// Waits up to 5 s for `counter` (one of `stats`) to reach `n`.
    fn wait_for_count(stats: &OutboundStats, counter: &AtomicU64, n: u64) {
        for _ in 0..100 {
            if counter.load(Relaxed) == n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the counter did not reach {n}: {stats:?}");
    }

    #[test]
    fn a_request_that_cannot_be_made_is_counted_failed() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/", closed.local_addr().unwrap());
        drop(closed);
        let stats = Arc::new(OutboundStats::default());
        let outbound = Outbound::new(DEFAULT_DNS_SERVER, stats.clone());
        outbound.request(&DaemonAction::GetUrl(url));
        wait_for_count(&stats, &stats.failed, 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A server that never answers holds both workers.
        let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stats = Arc::new(OutboundStats::default());
        let outbound = Outbound::new(dns.local_addr().unwrap(), stats.clone());
        let lookup = DaemonAction::DnsLookup("flood.example.test".into());
        for _ in 0..QUEUE + WORKERS + 10 {
            outbound.request(&lookup);
        }
        assert!(stats.dropped.load(Relaxed) >= 10, "{stats:?}");
    }
}
