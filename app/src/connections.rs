//! The accept loop: HTTP/1.1 connections served by hyper under a header-read timeout, at most
//! `--max-connections` of them at once, and closed within a bound at shutdown.
//!
//! At the limit a new connection takes the place of the open connection idle longest (no
//! request in flight: a slow-loris connection still sending headers, or an idle keep-alive
//! one), which is closed — nothing is lost, no request was in it. Before choosing, the accept
//! loop yields once, so a connection whose request has arrived but was not read yet (its task
//! not polled: a health check just ahead of a burst of connections) reads as busy, not idle. Only when every connection
//! has a request in flight is the new one answered `503` and closed at once. Since the signal
//! endpoints shed load below the connection limit (`--max-concurrent-requests` <
//! `--max-connections`), a connection is always idle, so health checks always get in, and the
//! process never holds more sockets than the limit.
//!
//! With TLS ([`crate::tls`]) each connection's task first completes the handshake, with the
//! configuration in force when it was accepted, under the same header-read timeout (a client
//! that never finishes the handshake is a slow loris too); a failed handshake is counted and the
//! connection closed. The connection table, eviction and shutdown treat a handshaking
//! connection like an idle one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::{HandshakeFailure, Metrics, Shed};
use crate::tls::Tls;

/// The address of the client a request came from, in every request's extensions (one
/// connection, one peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// What the accept loop enforces per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection that has not sent a request's complete headers this long after it opened,
    /// or after its previous answer (idle keep-alive), is closed.
    pub header_read_timeout: Duration,
    /// Connections open at once, at most.
    pub max: usize,
}

/// The body of the answer to a connection beyond the limit while every open one is busy.
const REFUSED_BODY: &str = "{\"type\":\"https://kubernaut.io/problems/gateway/overloaded\",\
\"title\":\"Overloaded\",\"status\":503,\"detail\":\"too many connections busy; send it again\"}";

/// That answer in full: written without waiting (it fits any socket buffer) before the socket
/// is closed.
static REFUSED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSED_BODY}",
        REFUSED_BODY.len()
    )
    .into_bytes()
});

/// One open connection.
#[derive(Debug)]
struct Slot {
    /// Requests in flight on it.
    busy: usize,
    /// When it was last active, in the table's own sequence (a larger number is more recent).
    active: u64,
    /// Closes it at once.
    evict: Arc<Notify>,
}

/// The open connections.
#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    sequence: u64,
    open: HashMap<u64, Slot>,
}

impl Table {
    fn tick(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// A new connection, idle, closed at once by `evict`; its id.
    fn insert(&mut self, evict: Arc<Notify>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let active = self.tick();
        self.open.insert(
            id,
            Slot {
                busy: 0,
                active,
                evict,
            },
        );
        id
    }

    /// Removes the connection idle longest and hands back its eviction switch.
    fn evict_idlest(&mut self) -> Option<Arc<Notify>> {
        let id = self
            .open
            .iter()
            .filter(|(_, slot)| slot.busy == 0)
            .min_by_key(|(_, slot)| slot.active)
            .map(|(id, _)| *id)?;
        self.open.remove(&id).map(|slot| slot.evict)
    }

    /// Marks a request on `id` started (`delta` 1) or ended (`-1`); a connection already
    /// evicted is not there.
    fn request(&mut self, id: u64, started: bool) {
        let now = self.tick();
        if let Some(slot) = self.open.get_mut(&id) {
            slot.busy = if started {
                slot.busy + 1
            } else {
                slot.busy.saturating_sub(1)
            };
            slot.active = now;
        }
    }
}

/// The connections the accept loop opened, shared with their tasks.
#[derive(Debug, Clone)]
struct Shared {
    table: Arc<Mutex<Table>>,
    metrics: Metrics,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table's updates are single assignments: a panic cannot leave it half-changed.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self, id: u64) {
        let mut table = self.table();
        table.open.remove(&id);
        self.metrics.http_connections_open(table.open.len());
    }
}

/// Ends a request's busy mark, even when its future is dropped.
struct InFlight {
    shared: Shared,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.table().request(self.id, false);
    }
}

/// One accepted connection, ready to serve HTTP over whatever stream it ends up with.
struct Connection {
    shared: Shared,
    id: u64,
    peer: SocketAddr,
    app: Router,
    http: http1::Builder,
}

impl Connection {
    /// Serves HTTP/1.1 on `io` until the client closes, or after the answer in flight once
    /// `closing` says so.
    async fn serve<I>(self, io: I, closing: &mut watch::Receiver<bool>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Connection {
            shared,
            id,
            peer,
            app,
            http,
        } = self;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            shared.table().request(id, true);
            request.extensions_mut().insert(Peer(peer));
            let in_flight = InFlight {
                shared: shared.clone(),
                id,
            };
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(in_flight);
                response
            }
        });
        let connection = http.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended");
                }
            }
            () = closed(closing) => {
                // Idle: closed at once; busy: closed after the answer in flight.
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
            }
        }
    }
}

/// Resolves once the listener has closed.
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Why a handshake failed, from what tokio-rustls said.
fn handshake_failure(e: &std::io::Error) -> HandshakeFailure {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return HandshakeFailure::Protocol;
    };
    match tls {
        rustls::Error::NoCertificatesPresented => HandshakeFailure::ClientCertificateMissing,
        rustls::Error::InvalidCertificate(_) => HandshakeFailure::ClientCertificateInvalid,
        rustls::Error::AlertReceived(_) => HandshakeFailure::ClientAlert,
        _ => HandshakeFailure::Protocol,
    }
}

/// The connections still open when the listener closed (see [`Open::close`]).
#[derive(Debug)]
pub struct Open {
    shared: Shared,
    tasks: JoinSet<()>,
    closing: watch::Sender<bool>,
}

/// What was still open when the shutdown bound ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// Connections closed unfinished.
    pub connections: usize,
    /// Requests in flight on them, left unanswered.
    pub requests: usize,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` resolves, then closes
/// the listener and hands back the connections still open, and what `stop` said.
pub async fn accept<T>(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = T>,
) -> (Open, T) {
    let mut open = Open {
        shared: Shared {
            table: Arc::default(),
            metrics,
        },
        tasks: JoinSet::new(),
        closing: watch::channel(false).0,
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            said = &mut stop => return (open, said),
            Some(_) = open.tasks.join_next(), if !open.tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if open.shared.table().open.len() >= limits.max {
                        // Room is made by closing an idle connection. One accepted just before
                        // may hold a request its task has not read yet (a health check ahead of
                        // a burst): every ready task gets a turn first, so it reads as busy.
                        tokio::task::yield_now().await;
                    }
                    open.admit(stream, peer, &app, &http, limits, tls.as_ref());
                }
                Err(e) => {
                    // Out of file descriptors (another part of the process holds them): back
                    // off rather than spin; the connections open now still close in time.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

impl Open {
    fn admit(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        app: &Router,
        http: &http1::Builder,
        limits: ConnectionLimits,
        tls: Option<&Arc<Tls>>,
    ) {
        let evict = Arc::new(Notify::new());
        let id = {
            let mut table = self.shared.table();
            if table.open.len() >= limits.max {
                match table.evict_idlest() {
                    Some(idle) => {
                        idle.notify_one();
                        self.shared.metrics.http_connection_evicted();
                    }
                    None => {
                        drop(table);
                        self.shared.metrics.http_shed(Shed::Connections);
                        // Without waiting: a client that does not read gets a closed socket.
                        // (Over TLS it reads this as a failed handshake: the same refusal.)
                        let _ = stream.try_write(&REFUSED);
                        return;
                    }
                }
            }
            let id = table.insert(evict.clone());
            self.shared.metrics.http_connections_open(table.open.len());
            id
        };
        let connection = Connection {
            shared: self.shared.clone(),
            id,
            peer,
            app: app.clone(),
            http: http.clone(),
        };
        let mut closing = self.closing.subscribe();
        // The configuration in force now: a rotation during the handshake does not touch it.
        let acceptor = tls.map(|tls| tls.acceptor());
        let handshake_timeout = limits.header_read_timeout;
        let shared = self.shared.clone();
        self.tasks.spawn(async move {
            let served = async {
                match acceptor {
                    None => connection.serve(TokioIo::new(stream), &mut closing).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                        let shaken = tokio::select! {
                            shaken = handshake => shaken,
                            // Nothing was asked on it yet: closed at once.
                            () = closed(&mut closing) => return,
                        };
                        let failure = match shaken {
                            Ok(Ok(stream)) => {
                                return connection.serve(TokioIo::new(stream), &mut closing).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                handshake_failure(&e)
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, timeout = ?handshake_timeout, "TLS handshake not finished in time");
                                HandshakeFailure::Timeout
                            }
                        };
                        connection.shared.metrics.tls_handshake_failed(failure);
                    }
                }
            };
            tokio::select! {
                () = served => {}
                // Dropping the connection closes the socket; no request is in flight on it.
                () = evict.notified() => {}
            }
            shared.close(id);
        });
    }

    /// Closes every connection: idle ones at once, busy ones after their answer; whatever is
    /// still open at `deadline` is closed unfinished and reported.
    pub async fn close(mut self, deadline: tokio::time::Instant) -> Option<Abandoned> {
        let _ = self.closing.send(true);
        let finished = tokio::time::timeout_at(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_ok() {
            return None;
        }
        let abandoned = {
            let table = self.shared.table();
            Abandoned {
                connections: table.open.len(),
                requests: table.open.values().map(|slot| slot.busy).sum(),
            }
        };
        self.tasks.shutdown().await;
        Some(abandoned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(&REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 503);
    }

    /// Writes `bytes`, then reads until the server closes the socket: what it said.
    async fn exchange(stream: &TcpStream, bytes: &[u8]) -> String {
        let mut written = 0;
        while written < bytes.len() {
            stream.writable().await.unwrap();
            written += stream.try_write(&bytes[written..]).unwrap_or(0);
        }
        let mut said = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            stream.readable().await.unwrap();
            match stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => said.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&said).into_owned()
    }

    #[tokio::test]
    async fn with_every_connection_busy_a_new_one_is_refused_and_an_idle_one_is_evicted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "fast" }));
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            max: 2,
        };
        let metrics = Metrics::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(accept(
            listener,
            app,
            limits,
            metrics.clone(),
            None,
            async {
                let _ = stopped.await;
            },
        ));
        let slow = b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        let fast = b"GET /fast HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

        // Two busy connections: a third is refused at once.
        let busy: Vec<TcpStream> = vec![
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let answers = busy.iter().map(|s| exchange(s, slow));
        let answers = futures::future::join_all(answers);
        let refused = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            exchange(&TcpStream::connect(addr).await.unwrap(), fast).await
        };
        let (answers, refused) = tokio::join!(answers, refused);
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(
            answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
            "{answers:?}"
        );

        // Two idle connections: a third takes the place of the older one.
        let older = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let newer = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = exchange(&TcpStream::connect(addr).await.unwrap(), fast).await;
        assert!(third.starts_with("HTTP/1.1 200"), "{third}");
        assert_eq!(
            exchange(&older, b"").await,
            "",
            "the older idle one was closed"
        );
        assert!(exchange(&newer, fast).await.starts_with("HTTP/1.1 200"));
        let text = metrics.render();
        assert!(
            text.contains("gateway_http_shed_total{reason=\"connections\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gateway_http_connections_evicted_total 1"),
            "{text}"
        );

        let _ = stop.send(());
        let (open, ()) = server.await.unwrap();
        assert_eq!(
            open.close(tokio::time::Instant::now() + Duration::from_secs(1))
                .await,
            None
        );
    }

    #[test]
    fn the_connection_idle_longest_is_evicted_and_never_a_busy_one() {
        let mut table = Table::default();
        for _ in 0..3 {
            table.insert(Arc::new(Notify::new()));
        }
        table.request(0, true); // busy
        table.request(1, true);
        table.request(1, false); // idle, but active after 2
        assert!(table.evict_idlest().is_some());
        assert_eq!(
            table
                .open
                .keys()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            [0, 1].into()
        );
        assert!(table.evict_idlest().is_some());
        assert!(table.evict_idlest().is_none(), "0 is busy");
    }
}
