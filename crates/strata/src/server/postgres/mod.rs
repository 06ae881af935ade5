//! PostgreSQL's wire protocol, on `[server] pg_listen` (off unless set), so that `psql`,
//! drivers (psycopg, JDBC, tokio-postgres) and the tools built on them can use Strata. Built
//! on `pgwire`; the statements are Strata's SQL, run as `POST /sql` runs them.
//!
//! - **Queries.** The simple protocol (several statements in one text; the first error
//!   stops the rest) and the extended protocol: prepared statements with `$1`, `$2`, …
//!   parameters (see `params`), text and binary formats.
//! - **Types.** See `types`: int8 (int4/int2 for columns declared INT/SMALLINT), float8,
//!   text, bool, timestamp.
//! - **Errors** carry the SQLSTATE of [`Error::sqlstate`].
//! - **Sessions.** Strata has no transactions: each statement is applied when it runs.
//!   `BEGIN`/`COMMIT` are accepted, and `ROLLBACK` after writes warns that they stay
//!   applied. `SET` is accepted and ignored; `SHOW <setting>`, `SELECT 1` and
//!   `SELECT version()` answer; `psql`'s `\d` lists the objects. Other queries of
//!   PostgreSQL's catalog are refused with what to use instead (see `session`).
//! - **Security.** As for HTTP: with `[server] token` set, a client must send the token as
//!   its password (cleartext password authentication, any user name); without a token,
//!   `pg_listen` must be a loopback address. The protocol is not encrypted: beyond
//!   loopback, put a TLS proxy in front (as for HTTP).
//! - **Connections** count against the same limits as HTTP's, separately (at most
//!   `max_connections`, `max_connections_per_client` from one address); one beyond them gets
//!   SQLSTATE 53300 and is closed.
//!
//! A prepared statement that returns rows is run once when the client asks for its
//! description before it binds values (tokio-postgres' `prepare`): Strata plans while it
//! runs, so that is how the columns are known.

mod params;
mod session;
mod types;

use super::connections::{ConnectionCounts, ConnectionLimits};
use super::{AppState, Runner};
use crate::error::Error;
use crate::sql::{self, Statement};
use crate::types::{DataType, Value};
use crate::ResultSet;
use async_trait::async_trait;
use futures_util::{stream, SinkExt};
use params::{Columns, Prepared};
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use session::Command;
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts PostgreSQL connections on `listener` until the server stops.
pub(super) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    counts: Arc<ConnectionCounts>,
) {
    let mut stopping = state.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|stop| *stop).await.is_ok();
    };
    tokio::pin!(stop);
    let handlers = Arc::new(Handlers::new(state));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("cannot accept a PostgreSQL connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(slot) = counts.take(peer.ip(), &limits) else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(stream, None, handlers).await {
                tracing::debug!("PostgreSQL connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
}

/// Answers a connection beyond a limit with PostgreSQL's `too_many_connections` and closes it.
async fn refuse(mut stream: TcpStream) {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "53300"),
        (
            b'M',
            "too many connections: the server's connection limit is reached; retry later",
        ),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    let write = async {
        stream.write_all(&message).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

struct Handlers {
    backend: Arc<Backend>,
    startup: Arc<Startup>,
}

impl Handlers {
    fn new(state: Arc<AppState>) -> Handlers {
        let startup = match state.token.clone() {
            Some(token) => Startup::Password(Box::new(CleartextPasswordAuthStartupHandler::new(
                TokenSource { token },
                DefaultServerParameterProvider::default(),
            ))),
            None => Startup::Open(NoPassword),
        };
        Handlers {
            backend: Arc::new(Backend {
                parser: Arc::new(Parser {
                    state: state.clone(),
                }),
                state,
            }),
            startup: Arc::new(startup),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.backend.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// How a connection starts: with the server token as password, or (loopback without a
/// token) without one.
enum Startup {
    Password(Box<CleartextPasswordAuthStartupHandler<TokenSource, DefaultServerParameterProvider>>),
    Open(NoPassword),
}

struct NoPassword;

impl NoopStartupHandler for NoPassword {}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + futures_util::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Password(handler) => handler.on_startup(client, message).await,
            Startup::Open(handler) => handler.on_startup(client, message).await,
        }
    }
}

/// The server token, as every user's password.
#[derive(Debug)]
struct TokenSource {
    token: String,
}

#[async_trait]
impl AuthSource for TokenSource {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(None, self.token.as_bytes().to_vec()))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<()>> {
        if super::same_secret(presented, self.token.as_bytes()) {
            Ok(None)
        } else {
            Err(PgWireError::InvalidPassword(
                login.user().unwrap_or_default().to_owned(),
            ))
        }
    }
}

/// A statement prepared by a client: a session command, or Strata SQL with parameters.
#[derive(Clone, Debug)]
pub struct PgStatement {
    prepared: Prepared,
    session: Option<Command>,
    returns_rows: bool,
}

struct Parser {
    state: Arc<AppState>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        text: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let text = text.to_string();
        let given = types.to_vec();
        let parsed = self
            .state
            .run_blocking(move |run| -> Result<PgStatement, Error> {
                if let Some(command) = session::classify(&text) {
                    let returns_rows = matches!(
                        command,
                        Command::Constant { .. } | Command::ListRelations { .. }
                    );
                    return Ok(PgStatement {
                        prepared: Prepared::new(&text, &given, &mut |_| None)?,
                        session: Some(command),
                        returns_rows,
                    });
                }
                let prepared = Prepared::new(&text, &given, &mut |name| columns_of(run, name))?;
                let statement = sql::parse_one(&prepared.with_placeholder_values())?;
                Ok(PgStatement {
                    prepared,
                    session: None,
                    returns_rows: statement.returns_rows(),
                })
            })
            .await
            .map_err(runner_failed)?;
        parsed.map(Some).map_err(|e| user_error(&e))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.prepared.parameter_types.clone())
    }

    /// Not used: [`Backend`] describes statements and portals itself, by running them.
    fn get_result_schema(
        &self,
        _stmt: &PgStatement,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

struct Backend {
    state: Arc<AppState>,
    parser: Arc<Parser>,
}

/// What one statement gave, before it is sent.
enum Step {
    Rows {
        columns: Vec<(String, Type)>,
        rows: Vec<Vec<Value>>,
    },
    Done {
        tag: Tag,
        wrote: bool,
    },
    Begin,
    Commit,
    Rollback,
    Failed(Error),
}

impl Backend {
    /// Runs `text` (one statement, or several in the simple protocol), up to the first
    /// failure.
    async fn run_text(&self, text: String, several: bool) -> PgWireResult<Vec<Step>> {
        self.state
            .run_blocking(move |run| {
                let mut steps = Vec::new();
                for piece in sql::pieces(&text) {
                    let step = match session::classify(piece.text) {
                        Some(command) => session_step(run, command),
                        None => match piece.parse() {
                            None => continue,
                            Some(Err(e)) => Step::Failed(e.into()),
                            Some(Ok(stmt)) => run_statement(run, &stmt, piece.text),
                        },
                    };
                    let failed = matches!(step, Step::Failed(_));
                    steps.push(step);
                    if failed || !several {
                        break;
                    }
                }
                steps
            })
            .await
            .map_err(runner_failed)
    }

    /// The responses to `steps`, with the transaction state they imply; a `ROLLBACK` after
    /// writes warns that they stay applied.
    async fn respond<C>(
        &self,
        client: &mut C,
        steps: Vec<Step>,
        format: &Format,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + futures_util::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        const WRITES: &str = "strata.writes_in_transaction";
        let mut responses = Vec::with_capacity(steps.len());
        for step in steps {
            let in_transaction = client.transaction_status() != TransactionStatus::Idle;
            responses.push(match step {
                Step::Rows { columns, rows } => rows_response(&columns, rows, format)?,
                Step::Done { tag, wrote } => {
                    if wrote && in_transaction {
                        let n = client
                            .metadata()
                            .get(WRITES)
                            .and_then(|n| n.parse::<u64>().ok());
                        client
                            .metadata_mut()
                            .insert(WRITES.into(), (n.unwrap_or(0) + 1).to_string());
                    }
                    Response::Execution(tag)
                }
                Step::Begin => {
                    client.metadata_mut().remove(WRITES);
                    Response::TransactionStart(Tag::new("BEGIN"))
                }
                Step::Commit => {
                    client.metadata_mut().remove(WRITES);
                    Response::TransactionEnd(Tag::new("COMMIT"))
                }
                Step::Rollback => {
                    if let Some(n) = client.metadata_mut().remove(WRITES) {
                        let warning = ErrorInfo::new(
                            "WARNING".into(),
                            "01000".into(),
                            format!(
                                "Strata has no transactions: every statement is applied when \
                                 it runs, so what changed since BEGIN stays applied \
                                 (statements that changed data: {n})"
                            ),
                        );
                        client
                            .send(PgWireBackendMessage::NoticeResponse(warning.into()))
                            .await?;
                    }
                    Response::TransactionEnd(Tag::new("ROLLBACK"))
                }
                Step::Failed(e) => Response::Error(Box::new(error_info(&e))),
            });
        }
        Ok(responses)
    }

    /// Runs a prepared statement with its portal's values.
    async fn run_portal(&self, portal: &Portal<PgStatement>) -> PgWireResult<Vec<Step>> {
        let stmt = &portal.statement.statement;
        if stmt.session.is_some() {
            return self.run_text(stmt.prepared.text.clone(), false).await;
        }
        let values = (0..stmt.prepared.parameter_types.len())
            .map(|i| {
                let bytes = portal.parameters.get(i).and_then(|b| b.as_deref());
                let ty = &stmt.prepared.parameter_types[i];
                types::decode_parameter(bytes, ty, format_at(&portal.parameter_format, i))
                    .map_err(|m| invalid_parameter(Some(i), &m))
            })
            .collect::<PgWireResult<Vec<Value>>>()?;
        let text = stmt
            .prepared
            .bind(&values)
            .map_err(|m| invalid_parameter(None, &m))?;
        self.run_text(text, false).await
    }

    /// The columns a row-returning statement gives, found by running it with `text`.
    async fn described_columns(
        &self,
        stmt: &PgStatement,
        text: String,
    ) -> PgWireResult<Vec<(String, Type)>> {
        if !stmt.returns_rows {
            return Ok(Vec::new());
        }
        match self.run_text(text, false).await?.pop() {
            Some(Step::Rows { columns, .. }) => Ok(columns),
            Some(Step::Failed(e)) => Err(user_error(&e)),
            _ => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + pgwire::api::ClientPortalStore
            + futures_util::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: pgwire::api::store::PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        let steps = self.run_text(query.to_string(), true).await?;
        self.respond(client, steps, &Format::UnifiedText).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo
            + pgwire::api::ClientPortalStore
            + futures_util::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        let steps = self.run_portal(portal).await?;
        let mut responses = self
            .respond(client, steps, &portal.result_column_format)
            .await?;
        Ok(responses.pop().unwrap_or(Response::EmptyQuery))
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<PgStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo
            + pgwire::api::ClientPortalStore
            + futures_util::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let text = if stmt.session.is_some() {
            stmt.prepared.text.clone()
        } else {
            stmt.prepared.with_placeholder_values()
        };
        let columns = self.described_columns(stmt, text).await?;
        Ok(DescribeStatementResponse::new(
            stmt.prepared.parameter_types.clone(),
            fields(&columns, &Format::UnifiedText),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<PgStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo
            + pgwire::api::ClientPortalStore
            + futures_util::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<PgWireBackendMessage>>::Error>,
    {
        if !portal.statement.statement.returns_rows {
            return Ok(DescribePortalResponse::new(Vec::new()));
        }
        // The rows are computed now, and the portal's execution sends them.
        match self.run_portal(portal).await?.pop() {
            Some(Step::Rows { columns, rows }) => {
                let response = rows_response(&columns, rows, &portal.result_column_format)?;
                let Response::Query(query) = response else {
                    unreachable!("rows give a query response")
                };
                let described = query.row_schema().as_ref().clone();
                portal.start(query).await;
                Ok(DescribePortalResponse::new(described))
            }
            Some(Step::Failed(e)) => Err(user_error(&e)),
            _ => Ok(DescribePortalResponse::new(Vec::new())),
        }
    }
}

/// The format of column or parameter `i`.
fn format_at(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) => match codes.get(i).or(codes.first()) {
            Some(&code) => FieldFormat::from(code),
            None => FieldFormat::Text,
        },
        unified => unified.format_for(i),
    }
}

fn fields(columns: &[(String, Type)], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            FieldInfo::new(name.clone(), None, None, ty.clone(), format_at(format, i))
        })
        .collect()
}

fn rows_response(
    columns: &[(String, Type)],
    rows: Vec<Vec<Value>>,
    format: &Format,
) -> PgWireResult<Response> {
    let schema = Arc::new(fields(columns, format));
    let mut encoder = DataRowEncoder::new(schema.clone());
    let mut encoded = Vec::with_capacity(rows.len());
    for row in &rows {
        for value in row {
            encoder.encode_field(&types::Cell(value)).map_err(|e| {
                PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "22003".into(),
                    e.to_string(),
                )))
            })?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(encoded),
    )))
}

/// Runs one statement of Strata's SQL.
fn run_statement(run: &mut Runner<'_>, stmt: &Statement, text: &str) -> Step {
    match run(stmt) {
        Err(e) => Step::Failed(e),
        Ok(Some(rs)) => {
            let declared = match stmt.kind() {
                "select" if rs.columns.iter().any(|(_, t)| *t == DataType::BigInt) => {
                    params::relation_in(text).and_then(|name| columns_of(run, &name))
                }
                _ => None,
            };
            Step::Rows {
                columns: result_columns(&rs, declared.as_ref()),
                rows: rs.rows,
            }
        }
        Ok(None) => Step::Done {
            tag: tag_of(stmt),
            wrote: stmt.kind() != "checkpoint",
        },
    }
}

/// The PostgreSQL types of a result's columns: a BIGINT column named as a column of the
/// object read that is declared INT or SMALLINT is `int4` or `int2`.
fn result_columns(rs: &ResultSet, declared: Option<&Columns>) -> Vec<(String, Type)> {
    rs.columns
        .iter()
        .map(|(name, ty)| {
            let narrow = declared
                .filter(|_| *ty == DataType::BigInt)
                .and_then(|cols| cols.iter().find(|(n, _)| n == name))
                .map(|(_, t)| t.clone())
                .filter(|t| *t == Type::INT4 || *t == Type::INT2);
            (name.clone(), narrow.unwrap_or_else(|| types::pg_type(*ty)))
        })
        .collect()
}

/// The command tag PostgreSQL answers a statement with.
fn tag_of(stmt: &Statement) -> Tag {
    match stmt.kind() {
        "insert" => {
            let tag = Tag::new("INSERT").with_oid(0);
            match stmt.rows_written() {
                Some(n) => tag.with_rows(n),
                None => tag,
            }
        }
        "create_source" => Tag::new("CREATE SOURCE"),
        "create_table" => Tag::new("CREATE TABLE"),
        "create_view" => Tag::new("CREATE MATERIALIZED VIEW"),
        "create_index" => Tag::new("CREATE INDEX"),
        other => Tag::new(&other.to_uppercase()),
    }
}

fn session_step(run: &mut Runner<'_>, command: Command) -> Step {
    match command {
        Command::Begin => Step::Begin,
        Command::Commit => Step::Commit,
        Command::Rollback => Step::Rollback,
        Command::Ignored(tag) => Step::Done {
            tag: Tag::new(tag),
            wrote: false,
        },
        Command::Constant { column, value } => Step::Rows {
            columns: vec![(column.to_string(), Type::TEXT)],
            rows: vec![vec![Value::Text(value.into())]],
        },
        Command::ListRelations { kinds } => match objects(run) {
            Err(e) => Step::Failed(e),
            Ok(objects) => text_rows(
                &["Schema", "Name", "Type", "Owner"],
                objects
                    .iter()
                    .filter(|(_, label)| kinds.contains(&session::relkind_of(label)))
                    .map(|(name, label)| {
                        vec![
                            Some("public".into()),
                            Some(name.clone()),
                            Some(label.to_string()),
                            Some("strata".into()),
                        ]
                    })
                    .collect(),
            ),
        },
        Command::FindRelation { name } => match objects(run) {
            Err(e) => Step::Failed(e),
            Ok(objects) => text_rows(
                &["oid", "nspname", "relname"],
                objects
                    .iter()
                    .zip(session::FIRST_OID..)
                    .filter(|((n, _), _)| *n == name)
                    .map(|((n, _), oid)| {
                        vec![
                            Some(oid.to_string()),
                            Some("public".into()),
                            Some(n.clone()),
                        ]
                    })
                    .collect(),
            ),
        },
        Command::RelationInfo { oid } => match object_with_oid(run, oid) {
            Err(e) => Step::Failed(e),
            Ok(found) => {
                let (columns, row) = session::relation_info(
                    found
                        .as_ref()
                        .map_or('r', |(_, label)| session::relkind_of(label)),
                );
                let rows = match found {
                    Some(_) => vec![row],
                    None => Vec::new(),
                };
                text_rows(&columns, rows)
            }
        },
        Command::RelationColumns { oid, extra } => {
            let described = object_with_oid(run, oid).and_then(|found| match found {
                None => Ok(Vec::new()),
                Some((name, _)) => {
                    let describe = format!("DESCRIBE \"{}\"", name.replace('"', "\"\""));
                    Ok(run(&sql::parse_one(&describe)?)?
                        .map(|rs| rs.rows)
                        .unwrap_or_default())
                }
            });
            let mut columns = vec![
                "attname",
                "format_type",
                "pg_get_expr",
                "attnotnull",
                "attcollation",
                "attidentity",
                "attgenerated",
            ];
            columns.extend(extra.iter().map(|(c, _)| *c));
            match described {
                Err(e) => Step::Failed(e),
                Ok(rows) => text_rows(
                    &columns,
                    rows.iter()
                        .map(|row| {
                            let text = |i: usize| match row.get(i) {
                                Some(Value::Text(t)) => t.to_string(),
                                _ => String::new(),
                            };
                            let not_null = matches!(row.get(2), Some(Value::Bool(false)));
                            let mut values = vec![
                                Some(text(0)),
                                Some(session::pg_type_name(&text(1))),
                                None,
                                Some(if not_null { "t" } else { "f" }.into()),
                                None,
                                Some(String::new()),
                                Some(String::new()),
                            ];
                            values.extend(extra.iter().map(|(_, v)| v.map(String::from)));
                            values
                        })
                        .collect(),
                ),
            }
        }
        Command::SourceServer => text_rows(
            &["srvname", "ftoptions"],
            vec![vec![
                Some("none: a source's rows pass through its views, none are kept".into()),
                Some(String::new()),
            ]],
        ),
        Command::NoRows => text_rows(&["?column?"], Vec::new()),
        Command::Catalog => Step::Failed(
            crate::error::SqlError::Unsupported(session::CATALOG_UNSUPPORTED.into()).into(),
        ),
    }
}

/// A result of text columns.
fn text_rows(columns: &[&str], rows: Vec<Vec<Option<String>>>) -> Step {
    Step::Rows {
        columns: columns
            .iter()
            .map(|c| (c.to_string(), Type::TEXT))
            .collect(),
        rows: rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map_or(Value::Null, |t| Value::Text(t.into())))
                    .collect()
            })
            .collect(),
    }
}

/// Every table, view and source with its kind's label, by name.
fn objects(run: &mut Runner<'_>) -> Result<Vec<(String, &'static str)>, Error> {
    let mut objects = Vec::new();
    for (_, plural, label) in session::relation_kinds() {
        let show = sql::parse_one(&format!("SHOW {plural}"))?;
        if let Some(rs) = run(&show)? {
            objects.extend(rs.rows.iter().filter_map(|r| match r.first() {
                Some(Value::Text(name)) => Some((name.to_string(), label)),
                _ => None,
            }));
        }
    }
    objects.sort();
    Ok(objects)
}

/// The object that `\\d NAME`'s first step numbered `oid`.
fn object_with_oid(
    run: &mut Runner<'_>,
    oid: u32,
) -> Result<Option<(String, &'static str)>, Error> {
    let index = oid.checked_sub(session::FIRST_OID);
    Ok(index.and_then(|i| objects(run).ok()?.into_iter().nth(i as usize)))
}

/// The columns of object `name` (with their declared types), `None` if there is none.
fn columns_of(run: &mut Runner<'_>, name: &str) -> Option<Columns> {
    let describe = format!("DESCRIBE \"{}\"", name.replace('"', "\"\""));
    let stmt = sql::parse_one(&describe).ok()?;
    let rs = run(&stmt).ok()??;
    Some(params::columns_from_describe(&rs.rows))
}

fn error_info(e: &Error) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.report())
}

fn user_error(e: &Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

/// A bound value that is not of its parameter's type (`index`: which parameter, from 0).
fn invalid_parameter(index: Option<usize>, message: &str) -> PgWireError {
    let message = match index {
        Some(i) => format!("parameter ${}: {message}", i + 1),
        None => message.to_string(),
    };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "22P02".into(),
        message,
    )))
}

fn runner_failed(e: tokio::task::JoinError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        format!("the statement runner failed: {e}"),
    )))
}
