//! Requests between nodes: one HTTP endpoint, `POST /cluster/v1`, on the node-to-node
//! address (TCP, the same host and port as gossip), whose body is an rkyv-encoded
//! [`Request`] and whose answer an rkyv-encoded [`Response`]. Rows and keys travel in the
//! WAL's encodings (`persist::image`).

use crate::batch::Column;
use crate::error::{Error, ExecError, PersistError, SqlError};
use crate::persist::image::{self, ColumnImage, KeyImage};
use crate::types::{DataType, Key, Value};
use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The path of the endpoint.
pub const PATH: &str = "/cluster/v1";

/// What one node asks another.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub enum Request {
    /// Order and record a write (sent to the log's owner). `request` names it, so that a
    /// retry after a failure is recognised and not applied twice.
    Write { request: u128, body: WriteBody },
    /// The input rows of a SELECT from the given shards, once the shards applied the log up
    /// to LSN `at`.
    Scan {
        sql: String,
        shards: Vec<u32>,
        at: u64,
    },
    /// Every group view `view` shows in the given shards, as of `at`, as rows of
    /// `[group values…, columns…]` (following the view's changes).
    Groups {
        view: String,
        shards: Vec<u32>,
        at: u64,
    },
    /// The rows of `table` whose primary keys are among `keys`, in the given shards, as of
    /// `at`.
    Existing {
        table: String,
        keys: Vec<KeyImage>,
        shards: Vec<u32>,
        at: u64,
    },
    /// What a DELETE's or an UPDATE's WHERE selects in the given shards, as of `at`: the
    /// primary keys of a DELETE, the rows of an UPDATE.
    Matching {
        sql: String,
        shards: Vec<u32>,
        at: u64,
    },
    /// A new log entry, pushed by the log's owner so that readers need not fetch it.
    Push {
        epoch: u64,
        lsn: u64,
        payload: Vec<u8>,
    },
    /// Checkpoint every shard this node owns.
    Checkpoint,
    /// Report what this node holds and has applied (`strata cluster status`).
    Status,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone)]
pub enum WriteBody {
    /// One statement's SQL text.
    Sql(String),
    /// A typed batch, validated against the sender's catalog, as a WAL record.
    Change(Vec<u8>),
}

/// What a node answers.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub enum Response {
    /// A write is recorded (it is in the log: acknowledged). `rows`: rows inserted.
    Written {
        rows: u64,
    },
    /// Rows in the object's columns.
    Rows {
        columns: Vec<ColumnImage>,
    },
    /// Keys: those a DELETE's `Matching` selects.
    Keys(Vec<KeyImage>),
    /// A node's report of itself.
    Status {
        applied_lsn: u64,
        shards: Vec<u32>,
        last_checkpoint_unix_ms: Option<u64>,
        log_owner: Option<String>,
    },
    /// A checkpoint was written, covering the log up to `lsn`.
    Checkpointed {
        lsn: u64,
        bytes: u64,
    },
    Done,
    /// The statement failed; nothing of it was applied. `kind` says which error family,
    /// `sqlstate` which error (as PostgreSQL's clients are told).
    Failed {
        kind: u8,
        sqlstate: String,
        message: String,
    },
    /// This node does not own the log (`owner`, if it knows).
    NotLeader {
        owner: Option<String>,
    },
    /// This node does not hold shard `shard` (any more, or yet).
    NotOwner {
        shard: u32,
    },
}

/// Error families as they cross the wire (`Response::Failed::kind`).
const SQL: u8 = 1;
const EXEC: u8 = 2;
const PERSIST: u8 = 3;

impl Response {
    /// The answer for a failed statement: its family and its message.
    pub fn failed(error: &Error) -> Response {
        let kind = match error {
            Error::Sql(_) => SQL,
            Error::Exec(_) => EXEC,
            _ => PERSIST,
        };
        Response::Failed {
            kind,
            sqlstate: error.sqlstate().to_string(),
            message: error.report(),
        }
    }

    /// The answer for a request that failed before it was understood or run.
    pub fn broken(message: String) -> Response {
        Response::Failed {
            kind: 0,
            sqlstate: "XX000".into(),
            message,
        }
    }
}

/// An error another node reported, with its message as that node printed it.
pub fn remote_error(kind: u8, sqlstate: String, message: String) -> Error {
    match kind {
        SQL => SqlError::Reported { sqlstate, message }.into(),
        EXEC => ExecError::Reported { sqlstate, message }.into(),
        _ => PersistError::Remote(message).into(),
    }
}

pub fn encode<T>(value: &T) -> Vec<u8>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    rkyv::to_bytes::<rancor::Error>(value)
        .expect("requests and responses serialize")
        .into_vec()
}

pub fn decode<T>(bytes: &[u8]) -> Result<T, String>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| e.to_string())
}

/// Rows as columns of the given types.
pub fn rows_to_columns(rows: &[Vec<Value>], types: &[DataType]) -> Vec<ColumnImage> {
    types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let values: Vec<Value> = rows.iter().map(|r| r[i].clone()).collect();
            image::column_image(&Column::from_values(*ty, &values))
        })
        .collect()
}

/// Columns back to rows.
pub fn columns_to_rows(columns: Vec<ColumnImage>) -> Vec<Vec<Value>> {
    let columns: Vec<Column> = columns.into_iter().map(image::column_from_owned).collect();
    let n = columns.first().map_or(0, Column::len);
    (0..n)
        .map(|r| columns.iter().map(|c| c.value(r)).collect())
        .collect()
}

pub fn keys_to_images(keys: &[Key]) -> Vec<KeyImage> {
    keys.iter().map(image::key_image).collect()
}

pub fn images_to_keys(keys: Vec<KeyImage>) -> Vec<Key> {
    keys.into_iter().map(image::key_from_owned).collect()
}

/// Sends requests to other nodes.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client whose connections leave from `local` (the node's own address, so that peers
    /// and firewalls see node-to-node traffic come from the address the node gossips on).
    pub fn new(local: Option<std::net::IpAddr>) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .local_address(local)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Client { http })
    }

    /// Sends `request` to the node at `to`, waiting at most `timeout` for the answer.
    pub async fn send(
        &self,
        to: SocketAddr,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let url = format!("http://{to}{PATH}");
        let reply = self
            .http
            .post(&url)
            .timeout(timeout)
            .body(encode(request))
            .send()
            .await
            .map_err(|e| format!("node {to} did not answer: {e}"))?;
        if !reply.status().is_success() {
            return Err(format!("node {to} answered {}", reply.status()));
        }
        let body = reply
            .bytes()
            .await
            .map_err(|e| format!("node {to}: the answer broke off: {e}"))?;
        decode::<Response>(&body)
            .map_err(|e| format!("node {to}: an answer that does not decode: {e}"))
    }
}
