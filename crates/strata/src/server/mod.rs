//! `strata serve`: the HTTP server of the networked tiers (durable and up), on axum/tokio.
//!
//! - `POST /sql`: the body is SQL text, or JSON `{"sql": "..."}` with a JSON content type.
//!   Statements run in order, as `strata sql` runs them. The answer is JSON
//!   `{"results": [R, ...]}` with one `R` per statement: its rows as an array of row objects
//!   (the CLI's JSON format), or `null` for a statement without rows. With
//!   `Accept: text/csv` it is the CLI's CSV output instead. At the first failing statement
//!   the answer is `{"error": "...", "statement": N}` (N counts from 0; the statements before
//!   it stay applied), with status 400 for bad SQL or input and 500 for a server fault
//!   (storage).
//! - `GET /health`: `{"status", "version", "profile", "uptime_seconds",
//!   "last_checkpoint_unix_ms", "object_store": "reachable"|"unreachable",
//!   "object_store_error"}`; the store is probed at most every 5 s, and the answer is 503
//!   (`"status": "unavailable"`) once it has been unreachable for `unhealthy_after`.
//! - `GET /metrics`: Prometheus text (see `render_metrics` for every metric).
//! - `GET /views/<name>/changes`: Server-Sent Events, one `change` event per changed group of
//!   the view (`{"op": "upsert", "key": {...}, "row": {...}}` or `{"op": "delete", "key":
//!   {...}}`), with keep-alive comments. A client that falls [`SSE_BUFFER`] events behind is
//!   dropped (ingestion never waits for it): it gets a last `dropped` event and the stream
//!   ends.
//!
//! Every request needs `Authorization: Bearer <token>` when a token is configured (401
//! otherwise); listening on a non-loopback address without a token is refused at startup.
//! Request bodies over the limit get 413 without being read whole, and a body that does not
//! arrive within `body_read_timeout` gets 408. Connections are bounded in number, per client
//! and in how long a request's header may take ([`ConnectionLimits`]). SIGTERM or SIGINT stop
//! accepting connections, let in-flight requests finish, and then the engine is closed,
//! which takes a final checkpoint.
//!
//! The engine is synchronous, and its object store client blocks on a runtime of its own,
//! so every engine call runs on a blocking thread (`spawn_blocking`), one at a time.

mod changes;
mod connections;
mod postgres;

use connections::ConnectionCounts;
pub use connections::ConnectionLimits;

use crate::error::{Cause, ConfigError, Error, ServerError};
use crate::format::{write_result, OutputFormat};
use crate::metrics::{Histogram, StorageMetrics};
use crate::profile::{ActiveProfile, PhysicalProfile};
use crate::Engine;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

pub use changes::SSE_BUFFER;

/// The default limit of a request body (and so of one SQL text): 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// How the server listens and whom it serves.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Where PostgreSQL's wire protocol is served; `None`: it is not.
    pub pg_listen: Option<SocketAddr>,
    /// Required to listen on a non-loopback address.
    pub token: Option<String>,
    pub max_body_bytes: usize,
    /// `/health` answers 503 once the checkpoint storage has been unreachable this long.
    pub unhealthy_after: Duration,
    /// After SIGTERM or SIGINT, how long open requests and connections may take to finish;
    /// then the connections left are closed and the server stops.
    pub shutdown_timeout: Duration,
    /// How long a request's body may take to arrive (408 after that).
    pub body_read_timeout: Duration,
    pub limits: ConnectionLimits,
    /// The thresholds of `GET /advise` and the `strata_advise_*` gauges.
    pub advise: crate::advise::Thresholds,
}

impl ServerSettings {
    /// The defaults, listening on `listen`: each protects the server from one client.
    pub fn new(listen: SocketAddr) -> ServerSettings {
        ServerSettings {
            listen,
            pg_listen: None,
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            unhealthy_after: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            limits: ConnectionLimits::default(),
            advise: crate::advise::Thresholds::default(),
        }
    }
}

/// What `/health` knows about the checkpoint storage.
#[derive(Default)]
struct Reachability {
    probed_at: Option<Instant>,
    /// Since when every probe failed, and the last failure.
    failing_since: Option<Instant>,
    last_error: Option<String>,
}

/// `/health` probes the storage at most this often.
const PROBE_EVERY: Duration = Duration::from_secs(5);

impl ServerSettings {
    /// Refuses to serve a non-loopback address without a token.
    pub fn check(&self) -> Result<(), ConfigError> {
        let no_token = self.token.as_deref().is_none_or(str::is_empty);
        if !self.listen.ip().is_loopback() && no_token {
            return Err(ConfigError::Invalid {
                origin: format!("[server] listen = {}", self.listen),
                message: "listening beyond loopback needs a bearer token: set [server] token or \
                          STRATA_SERVER_TOKEN (or listen on 127.0.0.1)"
                    .into(),
            });
        }
        if let Some(pg) = self.pg_listen.filter(|a| !a.ip().is_loopback() && no_token) {
            return Err(ConfigError::Invalid {
                origin: format!("[server] pg_listen = {pg}"),
                message: "listening beyond loopback needs a password: set [server] token or \
                          STRATA_SERVER_TOKEN, which clients send as their password (or listen \
                          on 127.0.0.1)"
                    .into(),
            });
        }
        Ok(())
    }
}

struct AppState {
    engine: Mutex<Engine>,
    /// In a multi-node tier: the cluster node, which runs statements concurrently (the
    /// engine's lock is then held only for status).
    node: Option<Arc<dyn crate::network::Node>>,
    token: Option<String>,
    started: Instant,
    counters: Mutex<ServerCounters>,
    /// The last probes of the checkpoint storage, for `/health`.
    reachability: Mutex<Reachability>,
    /// How long the storage may be unreachable before `/health` answers 503.
    unhealthy_after: Duration,
    /// What `/health` and `/metrics` last read of the engine: while a statement holds the
    /// engine they answer from it, at once, instead of waiting.
    observed: Mutex<Observed>,
    /// Becomes `true` at shutdown: ends the change streams, which never end by themselves.
    stopping: tokio::sync::watch::Receiver<bool>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    connections: Arc<ConnectionCounts>,
    /// The change streams of views, shared by their clients.
    hubs: changes::Hubs,
    advise: crate::advise::Thresholds,
    /// `(when, rows ingested)` over the last minute, for the ingest rate.
    ingest_samples: Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

/// The engine's status as `/health` and `/metrics` show it.
#[derive(Clone, Default)]
struct Observed {
    last_checkpoint: Option<std::time::SystemTime>,
    rows_ingested: u64,
    sizes: Vec<(&'static str, String, usize)>,
    storage: StorageMetrics,
    cluster: Option<crate::network::ClusterStatus>,
}

impl Observed {
    fn of(engine: &Engine) -> Observed {
        Observed {
            last_checkpoint: engine.last_checkpoint(),
            rows_ingested: engine.rows_ingested(),
            sizes: engine
                .state_sizes()
                .into_iter()
                .map(|(kind, name, keys)| (kind, name.to_string(), keys))
                .collect(),
            storage: engine.storage_metrics(),
            cluster: engine.cluster_status(),
        }
    }
}

impl AppState {
    /// The engine's status now, or — while a statement holds the engine — as it was last
    /// read; `probe` runs on the engine when it is free (the storage probe of `/health`).
    fn observe(&self, probe: impl FnOnce(&Engine)) -> Observed {
        let engine = match self.engine.try_lock() {
            Ok(engine) => Some(engine),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = engine {
            probe(&engine);
            *observed = Observed::of(&engine);
        }
        observed.clone()
    }
}

/// The ingest rate is measured over this window (the `ingest_rate` trigger).
const INGEST_WINDOW: Duration = Duration::from_secs(60);
/// How often the rows ingested are sampled for it.
const INGEST_SAMPLE_EVERY: Duration = Duration::from_secs(5);

impl AppState {
    /// Records the rows ingested so far, for the ingest rate over the last minute.
    fn sample_ingest(&self, rows: u64) {
        let now = Instant::now();
        let mut samples = self
            .ingest_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, rows));
        while samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > INGEST_WINDOW + INGEST_SAMPLE_EVERY)
        {
            samples.pop_front();
        }
    }

    /// Rows per second over the samples of the last minute; `None` until they span 5 s.
    fn ingest_rate(&self) -> Option<f64> {
        let samples = self
            .ingest_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (&(t0, r0), &(t1, r1)) = (samples.front()?, samples.back()?);
        let span = t1.duration_since(t0);
        (span >= INGEST_SAMPLE_EVERY).then(|| r1.saturating_sub(r0) as f64 / span.as_secs_f64())
    }

    /// The advice for this server now (`GET /advise`, the `strata_advise_*` gauges).
    fn advice(&self) -> crate::advise::Report {
        let (memory_bytes, memory_limit_bytes) = crate::advise::measure::memory();
        let write_p95_seconds = {
            let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            crate::advise::p95(&counters.write_seconds)
        };
        let measurements = crate::advise::Measurements {
            memory_bytes,
            memory_limit_bytes,
            ingest_rows_per_s: self.ingest_rate(),
            write_p95_seconds,
            ..Default::default()
        };
        crate::advise::Report {
            profile: ActiveProfile::NAME.into(),
            source: format!(
                "a running server, up {} s",
                self.started.elapsed().as_secs()
            ),
            triggers: crate::advise::evaluate(
                ActiveProfile::KIND,
                &measurements,
                &self.advise,
                None,
            ),
        }
    }
}

/// Samples the rows ingested every few seconds, for the ingest rate.
async fn sample_ingest_forever(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(INGEST_SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let sampled = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let rows = sampled.observe(|_| {}).rows_ingested;
            sampled.sample_ingest(rows);
        })
        .await;
    }
}

/// `GET /cluster`: the members and what each reports (multi-node tiers; 404 otherwise).
async fn cluster(State(state): State<Arc<AppState>>) -> Response {
    let Some(node) = state.node.clone() else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "this server is not a cluster node (profile {})",
                ActiveProfile::NAME
            ),
            None,
        );
    };
    let surveyed = tokio::task::spawn_blocking(move || {
        let status = node.cluster_status();
        crate::network::ClusterReport {
            node_id: status.node_id,
            log_owner: status.log_owner,
            shards_total: status.shards_total,
            assignment: status.assignment,
            members: node.survey(),
        }
    })
    .await;
    match surveyed {
        Ok(report) => Json(report).into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the survey failed: {e}"),
            None,
        ),
    }
}

async fn advise(State(state): State<Arc<AppState>>) -> Response {
    match tokio::task::spawn_blocking(move || state.advice()).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the advice failed: {e}"),
            None,
        ),
    }
}

/// The triggers as gauges: `strata_advise_move` (1 when one fires), and the value and
/// threshold each compares.
fn render_advise_metrics(report: &crate::advise::Report) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, help: &str, sample: &dyn Fn(&crate::advise::Trigger) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for t in &report.triggers {
                if let Some(v) = sample(t) {
                    let _ = writeln!(
                        out,
                        "{name}{{trigger=\"{}\",to=\"{}\",unit=\"{}\"}} {v}",
                        t.name, t.to, t.unit
                    );
                }
            }
        };
    family(
        "strata_advise_move",
        "1 when the trigger says it is time to move up a tier (GET /advise says why), else 0.",
        &|t| {
            Some(f64::from(u8::from(
                t.verdict == crate::advise::Verdict::Move,
            )))
        },
    );
    family(
        "strata_advise_value",
        "What the trigger measured (absent when it could not).",
        &|t| t.value,
    );
    family(
        "strata_advise_threshold",
        "The value at which the trigger fires.",
        &|t| Some(t.threshold),
    );
    out
}

/// Runs one statement: on the cluster node, or on the engine.
type Runner<'a> = dyn FnMut(&crate::Statement) -> Result<Option<crate::ResultSet>, Error> + 'a;

impl AppState {
    /// Runs `work` on a blocking thread with this server's statement runner: the cluster
    /// node's, or the engine's (locked while `work` runs). Every statement run is counted in
    /// `strata_statements_total`.
    async fn run_blocking<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Runner<'_>) -> R + Send + 'static,
    ) -> Result<R, tokio::task::JoinError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut counted = Vec::new();
            let mut timed =
                |stmt: &crate::Statement, run: &mut dyn FnMut(&crate::Statement) -> _| {
                    let start = Instant::now();
                    let outcome: Result<Option<crate::ResultSet>, Error> = run(stmt);
                    counted.push((
                        stmt.kind(),
                        if outcome.is_ok() { "ok" } else { "error" },
                        start.elapsed().as_secs_f64(),
                    ));
                    outcome
                };
            let result = match &state.node {
                Some(node) => work(&mut |stmt| timed(stmt, &mut |s| node.run(s))),
                None => {
                    let mut engine = state.engine.lock().unwrap_or_else(|p| p.into_inner());
                    work(&mut |stmt| timed(stmt, &mut |s| engine.run(s)))
                }
            };
            let mut counters = state.counters.lock().unwrap_or_else(|p| p.into_inner());
            for (kind, outcome, seconds) in counted {
                *counters.statements.entry((kind, outcome)).or_default() += 1;
                if matches!(kind, "insert" | "update" | "delete") && outcome == "ok" {
                    counters.write_seconds.observe(seconds);
                }
            }
            result
        })
        .await
    }
}

/// What the server counts itself (the engine counts rows and storage).
#[derive(Default)]
struct ServerCounters {
    /// Statements by `(kind, outcome)`; outcome `ok` or `error`.
    statements: BTreeMap<(&'static str, &'static str), u64>,
    /// Requests by `(path, status)`, and their latency.
    requests: BTreeMap<(String, u16), u64>,
    request_seconds: Histogram,
    /// Latency of INSERT, UPDATE and DELETE statements (the `write_latency` trigger).
    write_seconds: Histogram,
}

/// The addresses the server is bound to (the ports, when the settings asked for port 0).
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub http: SocketAddr,
    pub postgres: Option<SocketAddr>,
}

/// Serves `engine` until SIGTERM or SIGINT, then closes it (final checkpoint). `on_listening`
/// gets the bound addresses before the first request.
pub fn serve(
    engine: Engine,
    settings: &ServerSettings,
    on_listening: impl FnOnce(Listening),
) -> Result<(), Error> {
    settings.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| server_error("start the async runtime", e))?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state = Arc::new(AppState {
        node: engine.shared_node(),
        observed: Mutex::new(Observed::of(&engine)),
        engine: Mutex::new(engine),
        token: settings.token.clone().filter(|t| !t.is_empty()),
        started: Instant::now(),
        counters: Mutex::new(ServerCounters::default()),
        reachability: Mutex::new(Reachability::default()),
        unhealthy_after: settings.unhealthy_after,
        stopping,
        max_body_bytes: settings.max_body_bytes,
        body_read_timeout: settings.body_read_timeout,
        connections: Arc::default(),
        hubs: changes::Hubs::default(),
        advise: settings.advise.clone(),
        ingest_samples: Mutex::default(),
    });
    let app = Router::new()
        .route("/sql", post(sql))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/advise", get(advise))
        .route("/cluster", get(cluster))
        .route("/views/{name}/changes", get(changes::view_changes))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state.clone());
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| server_error(&format!("listen on {}", settings.listen), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| server_error("read the bound address", e))?;
        let postgres = match settings.pg_listen {
            Some(address) => {
                let pg = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|e| server_error(&format!("listen on {address} (pg_listen)"), e))?;
                let pg_bound = pg
                    .local_addr()
                    .map_err(|e| server_error("read the bound address", e))?;
                tokio::spawn(postgres::serve(
                    pg,
                    state.clone(),
                    settings.limits,
                    Arc::default(),
                ));
                Some(pg_bound)
            }
            None => None,
        };
        on_listening(Listening {
            http: bound,
            postgres,
        });
        tokio::spawn(sample_ingest_forever(state.clone()));
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        };
        connections::serve(
            listener,
            app,
            settings.limits,
            state.connections.clone(),
            shutdown,
            settings.shutdown_timeout,
        )
        .await;
        Ok::<(), Error>(())
    })?;
    drop(runtime);
    let state = Arc::try_unwrap(state).map_err(|_| {
        server_error(
            "shut down",
            "a request still holds the engine after the server stopped",
        )
    })?;
    let engine = state
        .engine
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    engine.close()
}

fn server_error(what: &str, cause: impl Into<Cause>) -> Error {
    ServerError::Failed {
        what: what.to_string(),
        source: cause.into(),
    }
    .into()
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials);
        if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send Authorization: Bearer <token>",
                None,
            );
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235: `bearer` and `BEARER` are `Bearer`).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares a presented token with the configured one in a time that does not depend on
/// where they differ.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Reads the request's body whole before the handlers see it: at most `max_body_bytes`
/// (413 beyond, without reading the rest) within `body_read_timeout` (408 after it), so a
/// client that trickles its body cannot hold the server.
async fn read_body(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than [server] max_body_bytes ({} bytes)",
                state.max_body_bytes
            ),
            None,
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return too_large();
    }
    let read = axum::body::to_bytes(body, state.max_body_bytes);
    match tokio::time::timeout(state.body_read_timeout, read).await {
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within [server] body_read_timeout ({:?})",
                state.body_read_timeout
            ),
            None,
        ),
        Ok(Err(e)) => {
            let over_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over_limit {
                too_large()
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                    None,
                )
            }
        }
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
    }
}

/// Counts every request and its latency, and logs one line per request at debug level.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    tracing::debug!(%method, path, status, seconds, "request");
    // Unknown paths are counted under one label, so clients cannot grow the label set.
    let label = match path.as_str() {
        "/sql" | "/health" | "/metrics" => path,
        _ => "other".to_string(),
    };
    let mut counters = state.counters.lock().unwrap_or_else(|p| p.into_inner());
    *counters.requests.entry((label, status)).or_default() += 1;
    counters.request_seconds.observe(seconds);
    response
}

fn error_response(status: StatusCode, message: &str, statement: Option<usize>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(n) = statement {
        body["statement"] = n.into();
    }
    (status, Json(body)).into_response()
}

/// The SQL text of a request: the body, or its `sql` field when it is JSON.
fn sql_text(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        #[derive(serde::Deserialize)]
        struct SqlBody {
            sql: String,
        }
        serde_json::from_slice::<SqlBody>(body)
            .map(|b| b.sql)
            .map_err(|e| format!("the JSON body must be {{\"sql\": \"...\"}}: {e}"))
    } else {
        String::from_utf8(body.to_vec()).map_err(|e| format!("the body is not UTF-8: {e}"))
    }
}

/// A failure while running statements: which one, and whether it was the server's fault.
struct Failed {
    statement: usize,
    error: Error,
}

async fn sql(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = match sql_text(&headers, &body) {
        Ok(t) => t,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message, None),
    };
    let csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let format = if csv {
        OutputFormat::Csv
    } else {
        OutputFormat::Json
    };
    let run = state
        .run_blocking(move |run| run_statements(run, &text, format))
        .await;
    match run {
        Err(join) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the statement runner failed: {join}"),
            None,
        ),
        Ok(Err(Failed { statement, error })) => {
            // The client's statement or data is at fault, or the server (storage, …) is.
            // A cluster that cannot take the statement now (the log changing owner, a shard
            // loading, this node cut off) is no fault of the client's: retry.
            let status = match error {
                Error::Exec(crate::ExecError::Remote(_)) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Sql(_) | Error::Exec(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error_response(status, &error.report(), Some(statement))
        }
        Ok(Ok(blocks)) if csv => {
            let mut out = Vec::new();
            for (i, block) in blocks.into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                out.extend_from_slice(&block);
            }
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
        }
        Ok(Ok(blocks)) => {
            let results: Vec<serde_json::Value> = blocks
                .into_iter()
                .map(|b| {
                    b.map_or(serde_json::Value::Null, |bytes| {
                        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
                    })
                })
                .collect();
            Json(json!({ "results": results })).into_response()
        }
    }
}

/// Runs the statements of `text` in order; each result set rendered in `format`, `None` for
/// a statement without rows.
fn run_statements(
    run: &mut Runner<'_>,
    text: &str,
    format: OutputFormat,
) -> Result<Vec<Option<Vec<u8>>>, Failed> {
    let statements = crate::sql::statements(text).map_err(|e| Failed {
        statement: 0,
        error: e.into(),
    })?;
    let mut blocks = Vec::new();
    for (i, stmt) in statements.enumerate() {
        let failed = |error: Error| Failed {
            statement: i,
            error,
        };
        let stmt = stmt.map_err(|e| failed(e.into()))?;
        match run(&stmt).map_err(failed)? {
            Some(rs) => {
                let mut out = Vec::new();
                write_result(&mut out, &rs, format)
                    .map_err(|e| failed(server_error("render a result", e)))?;
                blocks.push(Some(out));
            }
            None => blocks.push(None),
        }
    }
    Ok(blocks)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let uptime = state.started.elapsed().as_secs();
    let unhealthy_after = state.unhealthy_after;
    let (last, failing_for, error, cluster) = tokio::task::spawn_blocking(move || {
        let probe = |engine: &Engine| {
            let mut r = state.reachability.lock().unwrap_or_else(|p| p.into_inner());
            if r.probed_at.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
                match engine.probe_storage() {
                    Ok(()) => {
                        r.failing_since = None;
                        r.last_error = None;
                    }
                    Err(e) => {
                        r.failing_since.get_or_insert_with(Instant::now);
                        r.last_error = Some(e.report());
                    }
                }
                r.probed_at = Some(Instant::now());
            }
        };
        let observed = state.observe(probe);
        let r = state.reachability.lock().unwrap_or_else(|p| p.into_inner());
        (
            observed.last_checkpoint,
            r.failing_since.map(|t| t.elapsed()),
            r.last_error.clone(),
            observed.cluster,
        )
    })
    .await
    .unwrap_or((
        None,
        None,
        Some("the health check failed to run".into()),
        None,
    ));
    let last_ms = last
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    let unhealthy = failing_for.is_some_and(|d| d >= unhealthy_after);
    let status = if unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut body = json!({
        "status": if unhealthy { "unavailable" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "profile": ActiveProfile::NAME,
        "uptime_seconds": uptime,
        "last_checkpoint_unix_ms": last_ms,
        "object_store": if error.is_some() { "unreachable" } else { "reachable" },
        "object_store_error": error,
    });
    if let Some(c) = cluster {
        body["cluster"] = json!({
            "node_id": c.node_id,
            "members": c.members,
            "known_members": c.known_members,
            "minority": c.minority,
            "log_owner": c.log_owner,
            "shards_owned": c.shards_owned,
            "shards_total": c.shards_total,
        });
    }
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = tokio::task::spawn_blocking(move || {
        let Observed {
            rows_ingested: rows,
            sizes,
            storage,
            cluster,
            ..
        } = state.observe(|_| {});
        let advice = state.advice();
        let counters = state.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = render_metrics(rows, &sizes, &storage, &counters, &state.connections);
        if let Some(cluster) = cluster {
            text.push_str(&render_cluster_metrics(&cluster));
        }
        text.push_str(&render_advise_metrics(&advice));
        text
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The Prometheus text exposition of every metric: `# HELP` and `# TYPE` lines, counters
/// ending in `_total`, durations in seconds, sizes in bytes.
fn render_metrics(
    rows_ingested: u64,
    sizes: &[(&'static str, String, usize)],
    storage: &StorageMetrics,
    counters: &ServerCounters,
    connections: &ConnectionCounts,
) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    };
    family(
        "strata_rows_ingested_total",
        "counter",
        "Rows inserted into sources and tables.",
        vec![format!(" {rows_ingested}")],
    );
    family(
        "strata_statements_total",
        "counter",
        "SQL statements run (over HTTP and the PostgreSQL protocol), by kind and outcome.",
        counters
            .statements
            .iter()
            .map(|((kind, outcome), n)| format!("{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"))
            .collect(),
    );
    family(
        "strata_state_keys",
        "gauge",
        "Keys held by each table and view.",
        sizes
            .iter()
            .map(|(kind, name, keys)| {
                format!("{{kind=\"{kind}\",name=\"{}\"}} {keys}", escape_label(name))
            })
            .collect(),
    );
    family(
        "strata_wal_bytes_total",
        "counter",
        "Bytes appended to the write-ahead log.",
        vec![format!(" {}", storage.wal_bytes)],
    );
    family(
        "strata_wal_fsync_seconds",
        "histogram",
        "Durations of the write-ahead log's fsyncs.",
        histogram_samples(&storage.wal_fsync_seconds),
    );
    family(
        "strata_checkpoints_total",
        "counter",
        "Checkpoints, by outcome.",
        vec![
            format!("{{outcome=\"ok\"}} {}", storage.checkpoints),
            format!("{{outcome=\"error\"}} {}", storage.checkpoint_failures),
        ],
    );
    family(
        "strata_checkpoint_seconds",
        "histogram",
        "Durations of successful checkpoints.",
        histogram_samples(&storage.checkpoint_seconds),
    );
    family(
        "strata_checkpoint_bytes_total",
        "counter",
        "Snapshot bytes written by successful checkpoints.",
        vec![format!(" {}", storage.checkpoint_bytes)],
    );
    family(
        "strata_http_requests_total",
        "counter",
        "HTTP requests, by path and status.",
        counters
            .requests
            .iter()
            .map(|((path, status), n)| format!("{{path=\"{path}\",status=\"{status}\"}} {n}"))
            .collect(),
    );
    family(
        "strata_http_request_seconds",
        "histogram",
        "HTTP request latency.",
        histogram_samples(&counters.request_seconds),
    );
    family(
        "strata_http_connections_open",
        "gauge",
        "Open HTTP connections.",
        vec![format!(" {}", connections.open())],
    );
    family(
        "strata_http_connections_refused_total",
        "counter",
        "HTTP connections refused with 503 because a connection limit was reached.",
        vec![format!(
            " {}",
            connections
                .refused
                .load(std::sync::atomic::Ordering::Relaxed)
        )],
    );
    out
}

/// The cluster's families (multi-node tiers).
fn render_cluster_metrics(c: &crate::network::ClusterStatus) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    };
    let gauge = |v: usize| vec![format!(" {v}")];
    family(
        "strata_cluster_members",
        "gauge",
        "Live members of the cluster, as this node sees them.",
        gauge(c.members.len()),
    );
    family(
        "strata_cluster_known_members",
        "gauge",
        "Members gossip knows: the live ones and those that stopped without draining in the \
         last hour.",
        gauge(c.known_members),
    );
    family(
        "strata_cluster_minority",
        "gauge",
        "1 while this node sees half of the known members or fewer (cut off: it does not take \
         the log over).",
        gauge(usize::from(c.minority)),
    );
    family(
        "strata_cluster_shards_owned",
        "gauge",
        "Shards this node holds.",
        gauge(c.shards_owned),
    );
    family(
        "strata_cluster_shards",
        "gauge",
        "Shards of the cluster.",
        gauge(c.shards_total),
    );
    family(
        "strata_cluster_log_owner",
        "gauge",
        "1 while this node owns the cluster log (orders every write).",
        gauge(usize::from(
            c.log_owner.as_deref() == Some(c.node_id.as_str()),
        )),
    );
    family(
        "strata_cluster_shard_takeovers_total",
        "counter",
        "Shards this node loaded (from a checkpoint and the log) since it started.",
        vec![format!(" {}", c.takeovers)],
    );
    family(
        "strata_cluster_fenced_writes_total",
        "counter",
        "Changes refused because another node took the log over (retried there).",
        vec![format!(" {}", c.fenced_writes)],
    );
    family(
        "strata_cluster_write_retries_total",
        "counter",
        "Writes this node retried because the log's owner could not take them, by cause.",
        c.write_retries
            .iter()
            .map(|(cause, n)| format!("{{cause=\"{cause}\"}} {n}"))
            .collect(),
    );
    family(
        "strata_cluster_writes_unconfirmed_total",
        "counter",
        "Writes given up on because the log had no owner for longer than the retry time: \
         they may or may not have been applied.",
        vec![format!(" {}", c.writes_unconfirmed)],
    );
    family(
        "strata_cluster_log_entries_total",
        "counter",
        "Log entries this node appended while it owned the log.",
        vec![format!(" {}", c.log_entries)],
    );
    family(
        "strata_cluster_log_changes_total",
        "counter",
        "Changes in the log entries this node appended (group commit: several per entry).",
        vec![format!(" {}", c.log_changes)],
    );
    family(
        "strata_cluster_log_put_seconds",
        "histogram",
        "Durations of the object store creates that append log entries.",
        histogram_samples(&c.put_seconds),
    );
    out
}

/// A histogram's samples after its name: cumulative `_bucket{le=…}`, `_sum`, `_count`.
fn histogram_samples(h: &Histogram) -> Vec<String> {
    let mut samples = Vec::with_capacity(h.counts.len() + 2);
    let mut cumulative = 0;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        let le = h
            .bounds
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        samples.push(format!("_bucket{{le=\"{le}\"}} {cumulative}"));
    }
    samples.push(format!("_sum {}", h.sum));
    samples.push(format!("_count {}", h.count));
    samples
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
