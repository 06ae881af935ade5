//! What PostgreSQL clients send that is about the session, not Strata's data: transaction
//! brackets, `SET`/`SHOW` of settings, the probes drivers and pools run (`SELECT 1`,
//! `SELECT version()`), and the catalog query of `psql`'s `\d`. Anything else that reads
//! PostgreSQL's system catalog gets an error that says what to use instead.
//!
//! Strata has no transactions: every statement is applied when it runs. `BEGIN` and
//! `COMMIT` are accepted (drivers send them on their own), and a `ROLLBACK` after writes
//! answers with a warning that they stay applied.

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
    /// `psql`'s `\d NAME`, step 1: the object named exactly `name`.
    FindRelation {
        name: String,
    },
    /// Step 2: the kind of the object with `oid` (as step 1 numbered it).
    RelationInfo {
        oid: u32,
    },
    /// Step 3: its columns.
    RelationColumns {
        oid: u32,
        /// The columns asked for after the first seven, with their value for every column
        /// (`\\d+` asks for storage and statistics; a foreign table for its options).
        extra: Vec<(&'static str, Option<&'static str>)>,
    },
    /// Step 4 for a source (a foreign table, to psql): its "server".
    SourceServer,
    /// The steps after (policies, statistics, publications, inheritance of the object):
    /// Strata has none of them, so no rows.
    NoRows,
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
            _ => return catalog_query(&normalized, text),
        },
        "with" => return catalog_query(&normalized, text),
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
fn catalog_query(normalized: &str, text: &str) -> Option<Command> {
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
        return Some(describe_step(normalized, text).unwrap_or(Command::Catalog));
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

/// The steps of `psql`'s `\d NAME` (psql 12 to 16), recognised by the catalog tables they
/// read and the object id they name.
fn describe_step(normalized: &str, text: &str) -> Option<Command> {
    // The first quoted number (`= '16384'`, `'16384'::pg_catalog.oid`): the object id
    // the step is about.
    let oid = || -> Option<u32> {
        normalized
            .split('\'')
            .skip(1)
            .step_by(2)
            .find_map(|quoted| quoted.parse().ok())
    };
    if normalized.contains("c.relname operator(pg_catalog.~) '^(") {
        // The name as written (its case kept), between psql's `^(` and `)$`.
        let (_, rest) = text.split_once("'^(")?;
        let name = rest.split(")$'").next()?;
        let plain = name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
        return plain.then(|| Command::FindRelation {
            name: name.to_string(),
        });
    }
    if normalized.contains("c.relchecks, c.relkind") && normalized.contains("where c.oid = '") {
        return Some(Command::RelationInfo { oid: oid()? });
    }
    if normalized.contains("from pg_catalog.pg_attribute a")
        && normalized.contains("a.attrelid = '")
    {
        // In the order psql asks for them; each only when the query names it.
        let optional = [
            ("attfdwoptions", "attfdwoptions", Some("")),
            ("a.attstorage", "attstorage", Some("p")),
            ("attcompression", "attcompression", Some("")),
            ("attstattarget", "attstattarget", Some("-1")),
            ("col_description", "description", None),
        ];
        let extra = optional
            .iter()
            .filter(|(needle, _, _)| normalized.contains(needle))
            .map(|&(_, column, value)| (column, value))
            .collect();
        return Some(Command::RelationColumns { oid: oid()?, extra });
    }
    if normalized.contains("from pg_catalog.pg_foreign_table f") && oid().is_some() {
        return Some(Command::SourceServer);
    }
    let footer = [
        "pg_catalog.pg_policy",
        "pg_catalog.pg_statistic_ext",
        "pg_catalog.pg_publication",
        "pg_catalog.pg_inherits",
        "pg_catalog.pg_trigger",
        "pg_catalog.pg_constraint",
        "pg_catalog.pg_index",
        "pg_catalog.pg_get_viewdef(",
    ];
    (footer.iter().any(|t| normalized.contains(t)) && oid().is_some()).then_some(Command::NoRows)
}

/// The object ids `\d NAME` is told: 16384 (PostgreSQL's first user oid) onwards, in the
/// order of the names; they hold for the steps of one `\d`.
pub const FIRST_OID: u32 = 16384;

/// `relkind` values, in PostgreSQL's terms, of the three kinds of Strata objects.
pub fn relkind_of(label: &str) -> char {
    relation_kinds()
        .iter()
        .find(|(_, _, l)| *l == label)
        .map_or('r', |(k, _, _)| *k)
}

/// The `\d NAME` step 2 row: `relchecks, relkind, relhasindex, relhasrules,
/// relhastriggers, relrowsecurity, relforcerowsecurity, relhasoids, relispartition,
/// reloptions, reltablespace, reloftype, relpersistence, relreplident, amname`.
pub fn relation_info(relkind: char) -> (Vec<&'static str>, Vec<Option<String>>) {
    let columns = vec![
        "relchecks",
        "relkind",
        "relhasindex",
        "relhasrules",
        "relhastriggers",
        "relrowsecurity",
        "relforcerowsecurity",
        "relhasoids",
        "relispartition",
        "reloptions",
        "reltablespace",
        "reloftype",
        "relpersistence",
        "relreplident",
        "amname",
    ];
    // No access method (NULL): psql then prints none.
    let row = [
        "0", "", "f", "f", "f", "f", "f", "f", "f", "", "0", "", "p", "d",
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| {
        Some(if i == 1 {
            relkind.to_string()
        } else {
            v.to_string()
        })
    })
    .chain([None])
    .collect();
    (columns, row)
}

/// A Strata column type as PostgreSQL's `format_type` names it.
pub fn pg_type_name(declared: &str) -> String {
    let upper = declared.to_ascii_uppercase();
    match upper.as_str() {
        "BIGINT" => "bigint".into(),
        "INT" => "integer".into(),
        "SMALLINT" => "smallint".into(),
        "DOUBLE" => "double precision".into(),
        "BOOLEAN" => "boolean".into(),
        "TIMESTAMP" => "timestamp without time zone".into(),
        "VARCHAR" | "TEXT" => "text".into(),
        _ => match upper.strip_prefix("VARCHAR") {
            Some(length) => format!("character varying{length}"),
            None => declared.to_lowercase(),
        },
    }
}

/// The message for a catalog query Strata cannot answer.
pub const CATALOG_UNSUPPORTED: &str = "Strata has no PostgreSQL system catalog (pg_catalog, \
     information_schema); list objects with SHOW TABLES, SHOW VIEWS or SHOW SOURCES (or \\d \
     in psql) and see an object's columns with DESCRIBE <name> (or \\d <name> in psql)";

/// The relation kinds of Strata's objects, as PostgreSQL's `relkind`: a table `r`, a
/// materialized view `m`, a source (rows pass through, none are kept) `f`.
pub fn relation_kinds() -> [(char, &'static str, &'static str); 3] {
    [
        ('r', "TABLES", "table"),
        ('m', "VIEWS", "materialized view"),
        ('f', "SOURCES", "source"),
    ]
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
    fn the_steps_of_psqls_describe_are_recognised() {
        // psql 15's `\d Users`, abridged to what is recognised.
        let find = "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     \
            LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname \
            OPERATOR(pg_catalog.~) '^(Users)$' COLLATE pg_catalog.default\n  AND \
            pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;";
        assert_eq!(
            classify(find),
            Some(Command::FindRelation {
                name: "Users".into()
            })
        );
        // A pattern (`\d u*`) is not a name: refused, not guessed.
        assert_eq!(
            classify(&find.replace("^(Users)$", "^(u.*)$")),
            Some(Command::Catalog)
        );
        let info = "SELECT c.relchecks, c.relkind, c.relhasindex FROM pg_catalog.pg_class c \
            WHERE c.oid = '16385';";
        assert_eq!(classify(info), Some(Command::RelationInfo { oid: 16385 }));
        let columns = "SELECT a.attname, a.attstorage, pg_catalog.col_description(a.attrelid, \
            a.attnum) FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16386' AND a.attnum > 0";
        assert_eq!(
            classify(columns),
            Some(Command::RelationColumns {
                oid: 16386,
                extra: vec![("attstorage", Some("p")), ("description", None)]
            })
        );
        let policies = "SELECT pol.polname FROM pg_catalog.pg_policy pol WHERE pol.polroles = \
            '{0}' OR pol.polrelid = '16386'";
        assert_eq!(classify(policies), Some(Command::NoRows));
        assert_eq!(
            classify("SELECT pg_catalog.pg_get_viewdef('16386'::pg_catalog.oid, true);"),
            Some(Command::NoRows)
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
