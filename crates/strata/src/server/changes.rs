//! `GET /views/<name>/changes`: a view's changes as Server-Sent Events.
//!
//! However many clients follow a view, the engine has one subscriber for it: each change is
//! encoded once, as the bytes of its SSE event, and shared by every client through a
//! broadcast channel (a client's copy is a reference count). A client that falls
//! [`SSE_BUFFER`] events behind gets a last `dropped` event and its stream ends; ingestion
//! never waits for a client. The engine's subscriber leaves at the first change after its
//! last client did. In a cluster, the node a client follows through reads the view from the
//! owners of its shards whenever the log moves (see `cluster::follow`).

use super::{error_response, AppState};
use crate::{Error, ViewChange};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events a change subscriber may fall behind before it is dropped.
pub const SSE_BUFFER: usize = 4096;

/// Events sent to a client in one write when several are waiting.
const EVENTS_PER_WRITE: usize = 256;

/// A comment line every 15 s keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One view's shared stream of encoded events.
struct Hub {
    events: broadcast::Sender<Bytes>,
    /// Whether the engine still calls its subscriber (it leaves once nobody listens).
    subscribed: Arc<AtomicBool>,
}

/// The hubs of the views that have (or had) clients.
#[derive(Default)]
pub(super) struct Hubs(Mutex<HashMap<String, Hub>>);

/// One SSE event: `event: KIND`, `data: JSON`, blank line.
fn frame(kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

pub(super) async fn view_changes(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let stopping = state.stopping.clone();
    let view = name.clone();
    let subscribed = tokio::task::spawn_blocking(move || {
        // The engine's lock first, as a statement that calls the subscribers holds it.
        let mut engine = state.engine.lock().unwrap_or_else(|p| p.into_inner());
        let mut hubs = state.hubs.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hub) = hubs.get(&view) {
            if hub.subscribed.load(Ordering::Acquire) {
                return Ok(hub.events.subscribe());
            }
        }
        let columns: Vec<String> = engine
            .columns_of(&view)
            .unwrap_or_default()
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let (events, receiver) = broadcast::channel(SSE_BUFFER);
        let subscribed = Arc::new(AtomicBool::new(true));
        let (sender, listening) = (events.clone(), subscribed.clone());
        let subscriber = Box::new(move |change: &ViewChange<'_>| {
            if sender.receiver_count() == 0 {
                listening.store(false, Ordering::Release);
                return false;
            }
            let _ = sender.send(frame("change", &change_json(&columns, change).to_string()));
            true
        });
        engine.subscribe(&view, subscriber)?;
        hubs.insert(view, Hub { events, subscribed });
        Ok::<_, Error>(receiver)
    })
    .await;
    let receiver = match subscribed {
        Err(join) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot subscribe: {join}"),
                None,
            )
        }
        Ok(Err(e @ Error::Sql(_))) => {
            return error_response(StatusCode::NOT_FOUND, &e.to_string(), None)
        }
        // In a cluster, the view's owners may not answer (the error says why).
        Ok(Err(e)) => return error_response(StatusCode::SERVICE_UNAVAILABLE, &e.report(), None),
        Ok(Ok(receiver)) => receiver,
    };
    let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let open = Following {
        receiver,
        stopping,
        keep_alive,
        view: name,
    };
    let events = futures_util::stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        let chunk = match open.next_chunk().await? {
            Ok(chunk) => (chunk, Some(open)),
            // The last event of a dropped client.
            Err(notice) => (notice, None),
        };
        Some((Ok::<_, std::convert::Infallible>(chunk.0), chunk.1))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

/// One client's stream of a view's changes.
struct Following {
    receiver: broadcast::Receiver<Bytes>,
    stopping: tokio::sync::watch::Receiver<bool>,
    keep_alive: tokio::time::Interval,
    view: String,
}

impl Following {
    /// The next bytes to send: waiting events (several in one chunk), or a keep-alive
    /// comment. `None` at shutdown; `Some(Err(notice))` when this client fell too far behind.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, Bytes>> {
        let first = tokio::select! {
            first = self.receiver.recv() => first,
            _ = self.keep_alive.tick() => return Some(Ok(Bytes::from_static(b":\n\n"))),
            _ = self.stopping.wait_for(|stop| *stop) => return None,
        };
        match first {
            Ok(event) => {
                let mut batch: Option<Vec<u8>> = None;
                for _ in 1..EVENTS_PER_WRITE {
                    let Ok(next) = self.receiver.try_recv() else {
                        break;
                    };
                    batch
                        .get_or_insert_with(|| event.to_vec())
                        .extend_from_slice(&next);
                }
                Some(Ok(batch.map_or(event, Bytes::from)))
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let view = &self.view;
                tracing::warn!("dropped a slow subscriber of view `{view}`");
                let notice = json!({ "error": format!("this client fell more than {SSE_BUFFER} changes behind view `{view}` and was dropped; reconnect and re-read the view") });
                Some(Err(frame("dropped", &notice.to_string())))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A view change as the JSON of a `change` event: the key and row by column name.
fn change_json(columns: &[String], change: &ViewChange<'_>) -> serde_json::Value {
    let object = |values: &[crate::Value], names: &[String]| {
        let map: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(values)
            .map(|(n, v)| (n.clone(), value_json(v)))
            .collect();
        serde_json::Value::Object(map)
    };
    match change {
        ViewChange::Upsert { key, row } => json!({
            "op": "upsert",
            "key": key.iter().map(value_json).collect::<Vec<_>>(),
            "row": object(row, columns),
        }),
        ViewChange::Delete { key } => json!({
            "op": "delete",
            "key": key.iter().map(value_json).collect::<Vec<_>>(),
        }),
    }
}

fn value_json(v: &crate::Value) -> serde_json::Value {
    match v {
        crate::Value::Null => serde_json::Value::Null,
        crate::Value::Int(i) => (*i).into(),
        crate::Value::Double(d) => serde_json::Number::from_f64(*d)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        crate::Value::Bool(b) => (*b).into(),
        other => other.to_string().into(),
    }
}
