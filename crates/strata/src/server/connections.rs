//! Accepting connections with bounds a client cannot lift: at most `max_connections` open
//! connections, at most `max_connections_per_client` from one IP address, and a deadline for
//! each request's header (a client that sends half a header is disconnected). A connection
//! beyond a limit is answered `503` and closed at once — never queued.
//!
//! At shutdown the listener closes, every connection finishes the request it is serving and
//! closes, and connections still open after the shutdown timeout are cut.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The bounds on connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// How long a client may take to send a request's header (also how long an idle
    /// keep-alive connection stays open).
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            max_connections_per_client: 128,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections, in all and by client address; refused ones, for `/metrics`.
#[derive(Default)]
pub(super) struct ConnectionCounts {
    open: Mutex<Open>,
    pub refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

impl ConnectionCounts {
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// A place for a connection from `client`, or `None` when a limit is reached.
    pub(super) fn take(
        self: &Arc<Self>,
        client: IpAddr,
        limits: &ConnectionLimits,
    ) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let of_client = open.by_client.get(&client).copied().unwrap_or(0);
        if open.total >= limits.max_connections || of_client >= limits.max_connections_per_client {
            return None;
        }
        open.total += 1;
        *open.by_client.entry(client).or_default() += 1;
        Some(Slot {
            counts: self.clone(),
            client,
        })
    }
}

/// A connection's place in the counts, given back when it closes.
pub(super) struct Slot {
    counts: Arc<ConnectionCounts>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains the connections for at
/// most `shutdown_timeout`.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
    shutdown: impl Future<Output = ()>,
    shutdown_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, typically: give the open connections time to close.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = counts.take(peer.ip(), &limits) else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream, peer.ip()));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(shutdown_timeout) => {
            tracing::warn!(
                "shutdown: connections still open after [server] shutdown_timeout ({shutdown_timeout:?}) were closed"
            );
        }
    }
}

/// Answers a connection beyond a limit with 503 and closes it, without reading it.
async fn refuse(mut stream: TcpStream, client: IpAddr) {
    tracing::debug!("refused a connection from {client}: connection limit reached");
    let body = r#"{"error":"too many connections: the server's connection limit is reached; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
