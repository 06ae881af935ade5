//! Errors, one enum per family of operations. Messages are lowercase, name the object and
//! say what to do. Every enum is `#[non_exhaustive]`: new failures get new variants. A
//! message names the tier only where the failure is the tier's (a requirement it has, a
//! statement it lacks); errors about a file or a store name the file or the store.
//!
//! Causes from other crates are kept as `source()`, not copied into the message: print an
//! error with its chain (`{:#}` with anyhow, or [`Error::report`]).

use crate::profile::ProfileKind;

/// Any error from the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl Error {
    /// The message with the messages of its causes, `outer: inner: …`, on one line.
    pub fn report(&self) -> String {
        report(self)
    }

    /// The error's SQLSTATE code, as PostgreSQL would report the same failure (`42601` for
    /// a syntax error, `42P01` for an unknown table, `23505` for a duplicate key, …).
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::Sql(e) => match e {
                SqlError::Parse(_) | SqlError::TooLarge { .. } => "42601",
                SqlError::Unsupported(_)
                | SqlError::NotInThisTier { .. }
                | SqlError::NotAvailableYet { .. } => "0A000",
                SqlError::UnknownObject { kind, .. } if *kind == "index" => "42704",
                SqlError::UnknownObject { .. } => "42P01",
                SqlError::WrongKind { .. } => "42809",
                SqlError::AlreadyExists { .. } => "42P07",
                SqlError::UnknownColumn { .. } => "42703",
                SqlError::Type(_) => "42804",
                SqlError::InvalidValue { message, .. } if message.contains("out of range") => {
                    "22003"
                }
                SqlError::InvalidValue { message, .. } if message.contains("characters") => "22001",
                SqlError::InvalidValue { .. } => "22P02",
                SqlError::InUse { .. } => "2BP01",
                SqlError::Reported { sqlstate, .. } => sqlstate,
            },
            Error::Exec(e) => match e {
                ExecError::StateFull { .. } => "54000",
                ExecError::DuplicateKey { .. } => "23505",
                ExecError::NotNull { .. } => "23502",
                ExecError::Eval(m) if m.contains("overflow") || m.contains("out of range") => {
                    "22003"
                }
                ExecError::Eval(m) if m.contains("division by zero") => "22012",
                ExecError::Eval(_) => "22000",
                ExecError::Remote(_) => "XX000",
                ExecError::Reported { sqlstate, .. } => sqlstate,
            },
            Error::Persist(_) => "58030",
            Error::Config(_) => "F0000",
            Error::Server(_) => "XX000",
        }
    }
}

/// An error's message with the messages of its causes, `outer: inner: …`.
pub(crate) fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let message = c.to_string();
        // `transparent` variants repeat their inner error's message as their own.
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = c.source();
    }
    text
}

/// A cause from another crate (an object store client, the async runtime).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Choosing and configuring a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(
        "profile `{requested}` is not compiled into this build (it was built with `{compiled}`); \
         rebuild with: {command}"
    )]
    FeatureNotCompiled {
        requested: ProfileKind,
        compiled: ProfileKind,
        command: String,
    },
    #[error("invalid profile name `{name}`: valid profiles are bare-metal, embedded, durable, constellation")]
    InvalidProfileName { name: String },
    #[error("profile `{profile}` requirement not met: {requirement}")]
    ProfileRequirementError {
        profile: ProfileKind,
        requirement: String,
    },
    #[error("cannot read config file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("invalid config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// `text` on one line: line breaks escaped as `\n` and `\r` (a message may quote SQL that
/// spans lines; an error is printed, and logged, as one line).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        text.replace('\n', "\\n").replace('\r', "\\r").into()
    } else {
        text.into()
    }
}

/// A statement that cannot run as written. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    #[error("syntax error: {}", one_line(.0))]
    Parse(String),
    #[error("not supported: {}", one_line(.0))]
    Unsupported(String),
    #[error("unknown {kind} `{}`; list them with SHOW {kind_plural}", one_line(.name))]
    UnknownObject {
        kind: &'static str,
        kind_plural: &'static str,
        name: String,
    },
    #[error("`{}` is a {actual}, not a {expected}; {}", one_line(.name), one_line(.hint))]
    WrongKind {
        name: String,
        actual: &'static str,
        expected: &'static str,
        hint: String,
    },
    #[error("{kind} `{}` already exists", one_line(.name))]
    AlreadyExists { kind: &'static str, name: String },
    #[error("unknown column `{}` in {}; it has: {}", one_line(.column), one_line(.object), one_line(.available))]
    UnknownColumn {
        column: String,
        object: String,
        available: String,
    },
    #[error("type error: {}", one_line(.0))]
    Type(String),
    #[error("invalid value for column `{}` of {}: {}", one_line(.column), one_line(.object), one_line(.message))]
    InvalidValue {
        object: String,
        column: String,
        message: String,
    },
    #[error(
        "{what} is not available in profile `{profile}`; it needs the `{tier}` tier: {command}"
    )]
    NotInThisTier {
        what: &'static str,
        profile: ProfileKind,
        tier: ProfileKind,
        command: String,
    },
    #[error(
        "{what} is not available in this build (profile `{profile}`): it is not implemented yet"
    )]
    NotAvailableYet {
        what: &'static str,
        profile: ProfileKind,
    },
    #[error("cannot drop {kind} `{}`: {}", one_line(.name), one_line(.reason))]
    InUse {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("statement too large: {size} bytes, the limit is {limit} bytes; split it into smaller statements")]
    TooLarge { size: usize, limit: usize },
    /// A statement error another node of the cluster reported, with its SQLSTATE.
    #[error("{message}")]
    Reported { sqlstate: String, message: String },
}

/// A failure while applying a valid statement or batch. Nothing of it was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    #[error(
        "state of {object} is full: it holds its capacity of {capacity} keys (profile `{profile}` \
         never grows state); raise [state] capacity (at most {max}) or use a tier whose state grows"
    )]
    StateFull {
        object: String,
        capacity: usize,
        max: usize,
        profile: ProfileKind,
    },
    #[error("duplicate primary key {} in table `{}`; use INSERT OR REPLACE to overwrite", one_line(.key), one_line(.table))]
    DuplicateKey { table: String, key: String },
    #[error("column `{}` of {} is NOT NULL but got NULL", one_line(.column), one_line(.object))]
    NotNull { object: String, column: String },
    #[error("{}", one_line(.0))]
    Eval(String),
    /// A failure another node of the cluster reported, in its words.
    #[error("{0}")]
    Remote(String),
    /// A failure another node of the cluster reported, with its SQLSTATE.
    #[error("{message}")]
    Reported { sqlstate: String, message: String },
}

/// Local files of persistent tiers: the data directory, WAL segments, snapshots, indexes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    // The OS error is part of the message, not a `source`, so that it is printed once.
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: String,
        cause: std::io::Error,
    },
    #[error("data directory {dir} is in use by another strata process{}; stop it or use another --data directory", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { dir: String, pid: Option<u32> },
    #[error(
        "corrupt WAL record in {file} at offset {offset}: {reason}; the records after it cannot be \
         trusted. To keep the data before it and drop the rest, run: strata repair --truncate-at-corruption"
    )]
    CorruptWal {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("{file} has format version {found}, but this strata reads versions up to {supported}; use a newer strata")]
    UnsupportedVersion {
        file: String,
        found: u32,
        supported: u32,
    },
    #[error("{file} is not a strata {kind} file (bad magic bytes)")]
    BadMagic { file: String, kind: &'static str },
    #[error("corrupt snapshot {file}: {reason}")]
    CorruptSnapshot { file: String, reason: String },
    #[error("WAL record {lsn} in {dir} cannot be replayed: {reason}")]
    BadRecord {
        dir: String,
        lsn: u64,
        reason: String,
    },
    #[error("the WAL is unusable after an earlier I/O error ({0}); restart strata to recover from the files on disk")]
    Poisoned(String),
    /// Storage that cannot be used as configured: a data directory that cannot be created,
    /// written or locked, an object store URL that does not work. An engine reports it for
    /// its own storage as its tier's `ProfileRequirementError`.
    #[error("{requirement}")]
    Unusable { requirement: String },
    #[error("object store: cannot {op} {location}")]
    ObjectStore {
        op: String,
        location: String,
        #[source]
        source: Cause,
    },
    /// An object-store prefix that another data directory writes to.
    #[error(
        "{store} is owned by {owner}; two data directories writing one prefix would strand \
         each other's data. Use another prefix, or — only if that directory is gone for good — \
         start once with [object_store] take_over = true (STRATA_OBJECT_STORE_TAKE_OVER=true)"
    )]
    Owned { store: String, owner: String },
    /// This data directory's claim on its prefix was taken over by another.
    #[error(
        "{store} was taken over by {by}: this data directory no longer writes checkpoints \
         there; stop this process (its changes since its last checkpoint stay in its WAL)"
    )]
    Fenced { store: String, by: String },
    /// A WAL that belongs to another history than the newest checkpoint.
    #[error(
        "the WAL in {wal} does not belong to the newest checkpoint {checkpoint} (written by data \
         directory {writer}): replaying it there would mix two histories, so nothing was \
         replayed. Start with an empty data directory to use that checkpoint, or point \
         [object_store] url at this directory's own store"
    )]
    ForeignWal {
        wal: String,
        checkpoint: String,
        writer: String,
    },
    /// A store that a copy must not write into, because it already holds checkpoints.
    #[error(
        "{store} already holds checkpoints (newest: {newest}); write into an empty store or prefix"
    )]
    NotEmpty { store: String, newest: String },
    #[error("{dir} is not a strata data directory (it has no wal/ or snapshots/)")]
    NotADataDirectory { dir: String },
    /// A storage failure another node of the cluster reported, in its words.
    #[error("{0}")]
    Remote(String),
    /// A change or a snapshot that cannot be encoded (nothing was written).
    #[error("cannot encode {what}: {cause}")]
    Encode { what: &'static str, cause: String },
}

/// The HTTP server of the networked tiers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("server: cannot {what}")]
    Failed {
        what: String,
        #[source]
        source: Cause,
    },
}

impl PersistError {
    /// An I/O error on `path` during `op` (e.g. "write", "fsync").
    pub fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> PersistError {
        PersistError::Io {
            op,
            path: path.display().to_string(),
            cause: source,
        }
    }
}
