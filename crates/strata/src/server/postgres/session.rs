//! What PostgreSQL clients send that is about the session, not Strata's data: transaction
//! brackets, `SET`/`SHOW` of settings, the probes drivers and pools run (`SELECT 1`,
//! `SELECT version()`), and the catalog query of `psql`'s `\d`. Anything else that reads
//! PostgreSQL's system catalog gets an error that says what to use instead.
//!
//! Strata has no transactions: every statement is applied when it runs. `BEGIN` and
//! `COMMIT` are accepted (drivers send them on their own), and a `ROLLBACK` after writes
//! answers with a warning that they stay applied.

use crate::types::{DataType, Value};

/// A session statement, recognised from its text.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Begin,
    Commit,
    Rollback,
    /// `SET …`, `RESET …`, `DISCARD …`: accepted and ignored; the tag to answer.
    Ignored(&'static str),
    /// A one-row answer: `SHOW <setting>`, `SELECT version()`, ….
    Constant {
        column: &'static str,
        value: String,
    },
    /// `psql`'s `\d` (and `\dt`, `\dm`, …): Strata's objects of the relation kinds asked for.
    ListRelations {
        kinds: Vec<char>,
    },
    /// A query of PostgreSQL's system catalog that Strata cannot answer.
    Catalog,
}

/// The settings `SHOW` answers, as a PostgreSQL 16 server with Strata's defaults would.
const SETTINGS: &[(&str, &str)] = &[
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("search_path", "public"),
    ("max_identifier_length", "255"),
];

/// The version PostgreSQL clients are told (they check the major version for features).
pub const SERVER_VERSION: &str = "16.0";

pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Strata {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The session command `text` is, `None` for a statement of Strata's SQL.
pub fn classify(text: &str) -> Option<Command> {
    let normalized = normalize(text);
    let words: Vec<&str> = normalized.split_whitespace().collect();
    let first = *words.first()?;
    let command = match first {
        "begin" | "start" => Command::Begin,
        "commit" | "end" => Command::Commit,
        "rollback" | "abort" => Command::Rollback,
        "set" => Command::Ignored("SET"),
        "reset" => Command::Ignored("RESET"),
        "discard" => Command::Ignored("DISCARD ALL"),
        "show" => {
            let name = words.get(1..)?.join(" ");
            // SHOW TABLES and the like are Strata's own.
            if ["sources", "tables", "views", "indexes"].contains(&name.as_str()) {
                return None;
            }
            let value = match name.as_str() {
                "server_version" => SERVER_VERSION.to_string(),
                "all" => return Some(Command::Catalog),
                _ => SETTINGS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())?,
            };
            return Some(Command::Constant {
                column: SETTINGS
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(["server_version"])
                    .find(|n| *n == name)?,
                value,
            });
        }
        "select" => match words[1..].join(" ").as_str() {
            "1" => Command::Constant {
                column: "?column?",
                value: "1".into(),
            },
            "version()" | "pg_catalog.version()" => Command::Constant {
                column: "version",
                value: version_string(),
            },
            "current_schema()" | "current_schema" => Command::Constant {
                column: "current_schema",
                value: "public".into(),
            },
            "current_database()" => Command::Constant {
                column: "current_database",
                value: "strata".into(),
            },
            _ => return catalog_query(&normalized),
        },
        "with" => return catalog_query(&normalized),
        _ => return None,
    };
    Some(command)
}

/// Lower case, without comments and a trailing `;`, blanks collapsed (outside quotes the
/// session commands have none that matter).
fn normalize(text: &str) -> String {
    let without_comments: String = text
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    without_comments
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A query that reads PostgreSQL's catalog: `\d`'s relation list is answered, the rest is
/// refused.
fn catalog_query(normalized: &str) -> Option<Command> {
    let reads_catalog = [
        "pg_catalog.",
        "information_schema.",
        "pg_class",
        "pg_type",
        "pg_namespace",
    ]
    .iter()
    .any(|t| normalized.contains(t));
    if !reads_catalog {
        return None;
    }
    let lists_relations = normalized.contains("from pg_catalog.pg_class c")
        && normalized.contains("c.relkind in (")
        && normalized.contains("pg_catalog.pg_table_is_visible(c.oid)")
        && !normalized.contains("c.relname operator");
    if !lists_relations {
        return Some(Command::Catalog);
    }
    let list = normalized
        .split("c.relkind in (")
        .nth(1)?
        .split(')')
        .next()?;
    let kinds = list
        .split(',')
        .filter_map(|k| k.trim().trim_matches('\'').chars().next())
        .collect();
    Some(Command::ListRelations { kinds })
}

/// The message for a catalog query Strata cannot answer.
pub const CATALOG_UNSUPPORTED: &str = "Strata has no PostgreSQL system catalog (pg_catalog, \
     information_schema); list objects with SHOW TABLES, SHOW VIEWS or SHOW SOURCES (or \\d \
     in psql) and see an object's columns with DESCRIBE <name>";

/// The relation kinds of Strata's objects, as PostgreSQL's `relkind`: a table `r`, a
/// materialized view `m`, a source (rows pass through, none are kept) `f`.
pub fn relation_kinds() -> [(char, &'static str, &'static str); 3] {
    [
        ('r', "TABLES", "table"),
        ('m', "VIEWS", "materialized view"),
        ('f', "SOURCES", "source"),
    ]
}

/// The columns of `\d`'s answer.
pub fn relation_columns() -> Vec<(String, DataType)> {
    ["Schema", "Name", "Type", "Owner"]
        .iter()
        .map(|c| (c.to_string(), DataType::Text))
        .collect()
}

/// One row of `\d`'s answer.
pub fn relation_row(name: &str, kind: &str) -> Vec<Value> {
    ["public", name, kind, "strata"]
        .iter()
        .map(|v| Value::Text((*v).into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements_are_recognised_and_strata_statements_are_not() {
        assert_eq!(classify("BEGIN"), Some(Command::Begin));
        assert_eq!(classify("start transaction;"), Some(Command::Begin));
        assert_eq!(classify("COMMIT"), Some(Command::Commit));
        assert_eq!(classify("ROLLBACK"), Some(Command::Rollback));
        assert_eq!(
            classify("SET extra_float_digits = 3"),
            Some(Command::Ignored("SET"))
        );
        assert_eq!(
            classify("SHOW TimeZone"),
            Some(Command::Constant {
                column: "timezone",
                value: "UTC".into()
            })
        );
        assert!(matches!(
            classify("select version()"),
            Some(Command::Constant {
                column: "version",
                ..
            })
        ));
        assert_eq!(classify("SHOW TABLES"), None);
        assert_eq!(classify("SELECT * FROM t"), None);
        assert_eq!(classify("INSERT INTO t VALUES ('pg_catalog.x')"), None);
        assert_eq!(
            classify("SELECT typname FROM pg_catalog.pg_type WHERE oid = 1"),
            Some(Command::Catalog)
        );
    }

    #[test]
    fn psqls_relation_list_is_recognised_with_its_kinds() {
        // psql 15's `\dt`.
        let query = "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind \
            WHEN 'r' THEN 'table' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \
            \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON \
            n.oid = c.relnamespace\nWHERE c.relkind IN ('r','p','')\n      AND n.nspname <> \
            'pg_catalog'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;";
        assert_eq!(
            classify(query),
            Some(Command::ListRelations {
                kinds: vec!['r', 'p']
            })
        );
    }
}
