//! Bad input gets a clear, one-line error that names what is wrong, never a panic or a
//! crash, and leaves everything already stored exactly as it was.

use std::time::Instant;
use strata::{Batch, Column, Engine, Error};

/// Longest error message accepted as "clear": a message must not echo huge input.
const MAX_MESSAGE: usize = 400;

/// An engine with a source, four views on it (grouped, filtered, windowed, global) and a
/// table, all holding some rows.
fn engine() -> Engine {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute(
        "CREATE SOURCE events (k BIGINT NOT NULL, name VARCHAR(8), v DOUBLE, ts TIMESTAMP);
         CREATE MATERIALIZED VIEW by_k AS
             SELECT k, COUNT(*) AS n, SUM(v) AS total, MAX(name) AS top FROM events GROUP BY k;
         CREATE MATERIALIZED VIEW by_name AS
             SELECT name, COUNT(*) AS n FROM events WHERE v > 0 GROUP BY name;
         CREATE MATERIALIZED VIEW per_minute AS
             SELECT tumble(ts, INTERVAL '1' MINUTE) AS minute, COUNT(*) AS n
             FROM events GROUP BY tumble(ts, INTERVAL '1' MINUTE);
         CREATE MATERIALIZED VIEW overall AS SELECT COUNT(*) AS n, AVG(v) AS mean FROM events;
         CREATE TABLE items (id BIGINT PRIMARY KEY, label VARCHAR(5) NOT NULL, price DOUBLE, added TIMESTAMP);
         INSERT INTO events VALUES
             (1, 'a', 1.5, '2026-01-01 00:00:10'),
             (2, 'b', -1.0, '2026-01-01 00:01:10'),
             (1, NULL, NULL, NULL);
         INSERT INTO items VALUES (1, 'one', 1.0, '2026-01-01 00:00:00'), (2, 'two', NULL, NULL);",
    )
    .expect("fixture");
    e
}

/// Everything observable: the catalog, every schema, and every table's and view's rows
/// (sorted, with NULL told apart from '').
fn snapshot(e: &mut Engine) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["SOURCES", "TABLES", "VIEWS"] {
        let names = e.query(&format!("SHOW {kind}")).expect("SHOW");
        for row in &names.rows {
            let name = row[0].to_string();
            let described = e.query(&format!("DESCRIBE \"{name}\"")).expect("DESCRIBE");
            out.push(format!("{kind} {name} {:?}", described.rows));
            if kind != "SOURCES" {
                let rs = e
                    .query(&format!("SELECT * FROM \"{name}\""))
                    .expect("SELECT *");
                let mut rows: Vec<String> =
                    rs.rows.iter().map(|r| format!("{name}: {r:?}")).collect();
                rows.sort();
                out.extend(rows);
            }
        }
    }
    out
}

/// Checks that an error is clear: non-empty, one line, short, mentioning every needle.
fn assert_clear(context: &str, err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    let shown: String = msg.chars().take(300).collect();
    assert!(!msg.trim().is_empty(), "{context}: empty error message");
    assert!(
        !msg.contains(['\n', '\r']),
        "{context}: error is not one line: {shown:?}"
    );
    assert!(
        msg.len() <= MAX_MESSAGE,
        "{context}: error message of {} bytes: {shown:?}",
        msg.len()
    );
    for needle in needles {
        assert!(
            msg.contains(needle),
            "{context}: error {msg:?} should mention {needle:?}"
        );
    }
}

/// Runs `sql`, expects a clear error naming `needles`, and checks that nothing changed.
fn assert_refused(e: &mut Engine, sql: &str, needles: &[&str]) -> String {
    let before = snapshot(e);
    let shown: String = sql.chars().take(120).collect();
    let err = match e.execute(sql) {
        Ok(results) => panic!(
            "expected an error for {shown:?}, got {} result set(s)",
            results.len()
        ),
        Err(err) => err,
    };
    assert_clear(&shown, &err, needles);
    assert_eq!(
        snapshot(e),
        before,
        "state changed after the failing statement {shown:?}"
    );
    println!("{shown:?}\n    -> {err}");
    err.to_string()
}

/// Like [`assert_refused`] for the batch API.
fn assert_batch_refused(
    e: &mut Engine,
    target: &str,
    batch: &Batch,
    upsert: bool,
    needles: &[&str],
) -> String {
    let before = snapshot(e);
    let result = if upsert {
        e.upsert_batch(target, batch)
    } else {
        e.insert_batch(target, batch)
    };
    let err = match result {
        Ok(rows) => {
            panic!("expected an error for a batch into {target}, {rows} rows were inserted")
        }
        Err(err) => err,
    };
    assert_clear(&format!("batch into {target}"), &err, needles);
    assert_eq!(
        snapshot(e),
        before,
        "state changed after a failing batch into {target}"
    );
    println!("batch into {target}\n    -> {err}");
    err.to_string()
}

fn outcome<T>(result: &Result<T, Error>) -> String {
    match result {
        Ok(_) => "executed".to_string(),
        Err(e) => format!("refused ({e})"),
    }
}

fn count(e: &mut Engine, sql: &str) -> i64 {
    match e.query(sql).expect("count query").rows[0][0] {
        strata::Value::Int(n) => n,
        ref other => panic!("expected a count from {sql}, got {other:?}"),
    }
}

#[test]
fn malformed_sql_is_refused() {
    let mut e = engine();
    let malformed = [
        "SELEC * FROM items",
        "SELECT FROM items",
        "SELECT * FROM",
        "SELECT * FROM items WHERE",
        "SELECT * FROM items ORDER BY",
        "SELECT * FROM items LIMIT",
        "SELECT id FROM items GROUP",
        "SELECT 1 + FROM items",
        "SELECT (id FROM items",
        "SELECT id) FROM items",
        "CREATE",
        "CREATE SOURCE",
        "CREATE SOURCE x",
        "CREATE SOURCE x (",
        "CREATE SOURCE x (a)",
        "CREATE SOURCE x (a BIGINT,)",
        "CREATE TABLE y (a BIGINT PRIMARY KEY",
        "CREATE MATERIALIZED VIEW v AS",
        "CREATE MATERIALIZED VIEW v AS SELECT",
        "INSERT INTO items VALUES (3, 'x'",
        "INSERT INTO items VALUES 3, 'x'",
        "INSERT INTO items (id, label VALUES (3, 'x')",
        "INSERT INTO items VALUES (3, 'x', 1.0, NULL) garbage",
        "DELETE items",
        "DROP",
        "DROP SOURCE",
        "DROP TABLE",
        "SHOW",
        "SHOW EVERYTHING",
        "DESCRIBE",
        "CHECKPOINT now",
        "'unterminated",
        "\"unterminated",
        "SELECT 'unterminated FROM items",
        "/* unclosed comment",
        "SELECT * FROM items;;; SELEC",
        "\u{0}",
        "SELECT 😀 FROM items",
        "@#$%^&",
        "INSERT INTO items VALUES (3, 'x', 1.0, NULL); INSERT INTO items VALUES (",
    ];
    for sql in malformed {
        if sql.starts_with("INSERT INTO items VALUES (3, 'x', 1.0, NULL);") {
            // The first statement runs and stays applied; the second is refused.
            let err = e.execute(sql).expect_err(sql);
            assert_clear(sql, &err, &["syntax error"]);
            assert_eq!(count(&mut e, "SELECT COUNT(*) FROM items WHERE id = 3"), 1);
            e.execute("DELETE FROM items WHERE id = 3").unwrap();
            continue;
        }
        assert_refused(&mut e, sql, &[]);
    }
    // Empty input is not an error; it does nothing.
    for sql in [
        "",
        "   ",
        ";",
        ";;\n;",
        "-- only a comment",
        "/* only a comment */",
    ] {
        assert!(e.execute(sql).expect(sql).is_empty(), "{sql:?}");
    }
    // query() wants exactly one statement that returns rows, and runs nothing otherwise.
    let before = snapshot(&mut e);
    for sql in [
        "",
        "SELECT * FROM items; SELECT * FROM items",
        "INSERT INTO items VALUES (9, 'nine', 9.0, NULL)",
        "CREATE TABLE other (k BIGINT PRIMARY KEY)",
        "DELETE FROM items",
        "DROP TABLE items",
    ] {
        let err = e.query(sql).expect_err(sql);
        assert_clear(sql, &err, &[]);
        assert_eq!(snapshot(&mut e), before, "query({sql:?}) changed the state");
    }
}

#[test]
fn wrong_types_are_refused() {
    let mut e = engine();
    let cases: &[(&str, &[&str])] = &[
        ("INSERT INTO items VALUES ('3', 'x', 1.0, NULL)", &["`id`", "items", "BIGINT"]),
        ("INSERT INTO items VALUES (3.5, 'x', 1.0, NULL)", &["`id`", "items"]),
        ("INSERT INTO items VALUES (3, 4, 1.0, NULL)", &["`label`", "items", "VARCHAR"]),
        ("INSERT INTO items VALUES (3, 'x', 'cheap', NULL)", &["`price`", "items", "DOUBLE"]),
        ("INSERT INTO items VALUES (3, 'x', true, NULL)", &["`price`", "items"]),
        ("INSERT INTO items VALUES (3, 'x', 1.0, 'yesterday')", &["`added`", "items", "timestamp"]),
        ("INSERT INTO items VALUES (3, 'x', 1.0, 12345)", &["`added`", "items"]),
        ("INSERT INTO items VALUES (3, 'x', 1.0, '2026-02-30 00:00:00')", &["`added`", "items"]),
        ("INSERT INTO events VALUES ('k', 'a', 1.0, NULL)", &["`k`", "events"]),
        ("INSERT INTO events VALUES (1, 'a', 'x', NULL)", &["`v`", "events"]),
        ("INSERT INTO events VALUES (1, 'a', 1.0, false)", &["`ts`", "events"]),
        ("INSERT INTO events VALUES (1, 'a', 1.0, '2026-01-01 00:00:00.1234')", &["`ts`", "events"]),
        ("INSERT INTO events VALUES (1 + 'a', 'a', 1.0, NULL)", &["type error"]),
        ("INSERT INTO events VALUES (99999999999999999999, 'a', 1.0, NULL)", &["BIGINT"]),
        ("INSERT INTO events VALUES (9223372036854775807 + 1, 'a', 1.0, NULL)", &["overflow"]),
        ("INSERT INTO events VALUES (1 / 0, 'a', 1.0, NULL)", &["division by zero"]),
        ("SELECT id FROM items WHERE label = 1", &["VARCHAR", "BIGINT"]),
        ("SELECT id FROM items WHERE label", &["BOOLEAN"]),
        ("SELECT id FROM items WHERE added > 5", &["TIMESTAMP"]),
        ("SELECT SUM(label) FROM items", &["sum", "VARCHAR"]),
        ("SELECT AVG(added) FROM items", &["avg", "TIMESTAMP"]),
        ("SELECT NOT price FROM items", &["NOT", "BOOLEAN"]),
        ("SELECT -label FROM items", &["VARCHAR"]),
        ("SELECT id FROM items WHERE price AND true", &["AND"]),
        ("DELETE FROM items WHERE price", &["BOOLEAN"]),
        ("DELETE FROM items WHERE label = 1", &["VARCHAR"]),
        ("CREATE MATERIALIZED VIEW bad AS SELECT name, SUM(name) AS s FROM events GROUP BY name", &["sum"]),
        ("CREATE MATERIALIZED VIEW bad AS SELECT tumble(k, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n FROM events GROUP BY tumble(k, INTERVAL '1' MINUTE)", &["tumble", "TIMESTAMP"]),
        ("CREATE MATERIALIZED VIEW bad AS SELECT k, COUNT(*) AS n FROM events WHERE name GROUP BY k", &["BOOLEAN"]),
        ("CREATE TABLE bad (d DOUBLE PRIMARY KEY)", &["DOUBLE", "bad"]),
        ("CREATE TABLE bad (d DECIMAL(4, 2) PRIMARY KEY)", &["DECIMAL"]),
        ("CREATE SOURCE bad (a BIGINT, a VARCHAR)", &["`a`"]),
        ("SELECT id FROM items LIMIT 'ten'", &["LIMIT"]),
    ];
    for (sql, needles) in cases {
        assert_refused(&mut e, sql, needles);
    }
    // Queries that fail while running (per row) return no partial result.
    assert_refused(
        &mut e,
        "SELECT id / (id - id) AS boom FROM items",
        &["division by zero"],
    );
    assert_refused(
        &mut e,
        "SELECT id, 9223372036854775807 * id AS big FROM items",
        &["overflow"],
    );
}

#[test]
fn unknown_names_are_refused() {
    let mut e = engine();
    let cases: &[(&str, &[&str])] = &[
        ("SELECT * FROM nope", &["`nope`"]),
        ("SELECT * FROM events", &["`events`", "source"]),
        ("INSERT INTO nope VALUES (1)", &["`nope`"]),
        (
            "INSERT INTO by_k VALUES (1, 1, 1.0, 'a')",
            &["`by_k`", "`events`"],
        ),
        ("DELETE FROM nope", &["`nope`"]),
        ("DELETE FROM events", &["`events`"]),
        ("DELETE FROM by_k", &["`by_k`"]),
        ("DROP TABLE nope", &["`nope`"]),
        ("DROP SOURCE nope", &["`nope`"]),
        ("DROP MATERIALIZED VIEW nope", &["`nope`"]),
        ("DROP TABLE events", &["`events`"]),
        (
            "DROP SOURCE events",
            &["`events`", "by_k", "by_name", "per_minute", "overall"],
        ),
        ("DESCRIBE nope", &["`nope`"]),
        (
            "SELECT nope FROM items",
            &["`nope`", "items", "id, label, price, added"],
        ),
        ("SELECT id FROM items WHERE nope = 1", &["`nope`", "items"]),
        ("SELECT id FROM items ORDER BY nope", &["`nope`", "items"]),
        (
            "SELECT COUNT(*) FROM items GROUP BY nope",
            &["`nope`", "items"],
        ),
        (
            "SELECT nope FROM by_k",
            &["`nope`", "by_k", "k, n, total, top"],
        ),
        (
            "INSERT INTO items (id, nope) VALUES (3, 1)",
            &["`nope`", "items"],
        ),
        (
            "INSERT INTO events (k, nope) VALUES (3, 1)",
            &["`nope`", "events"],
        ),
        (
            "INSERT INTO items VALUES (id, 'x', 1.0, NULL)",
            &["`id`", "VALUES"],
        ),
        ("DELETE FROM items WHERE nope = 1", &["`nope`", "items"]),
        (
            "CREATE MATERIALIZED VIEW v2 AS SELECT nope, COUNT(*) AS n FROM events GROUP BY nope",
            &["`nope`", "events"],
        ),
        (
            "CREATE MATERIALIZED VIEW v2 AS SELECT k, COUNT(*) AS n FROM nope GROUP BY k",
            &["`nope`"],
        ),
        (
            "CREATE MATERIALIZED VIEW v2 AS SELECT id, COUNT(*) AS n FROM items GROUP BY id",
            &["`items`"],
        ),
        (
            "CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n FROM events GROUP BY k",
            &["`by_k`", "exists"],
        ),
        (
            "CREATE TABLE events (id BIGINT PRIMARY KEY)",
            &["`events`", "exists"],
        ),
        ("CREATE TABLE pk (a BIGINT, PRIMARY KEY (b))", &["`b`"]),
        ("SELECT frobnicate(label) FROM items", &["frobnicate"]),
    ];
    for (sql, needles) in cases {
        assert_refused(&mut e, sql, needles);
    }
    // A huge or multi-line identifier is shown shortened and on one line.
    let long_name = "n".repeat(100_000);
    assert_refused(
        &mut e,
        &format!("SELECT {long_name} FROM items"),
        &["nnnn", "bytes"],
    );
    assert_refused(&mut e, "SELECT \"a\nb\" FROM items", &["items"]);
}

#[test]
fn oversized_strings_are_refused() {
    let mut e = engine();
    e.execute("CREATE TABLE blobs (id BIGINT PRIMARY KEY, body VARCHAR)")
        .unwrap();
    e.execute("CREATE SOURCE texts (body VARCHAR)").unwrap();
    e.execute(
        "CREATE MATERIALIZED VIEW text_stats AS SELECT COUNT(*) AS n, MAX(body) AS top FROM texts",
    )
    .unwrap();
    let limit = 1 << 20;

    // Exactly the limit is fine; one byte more is refused, naming the column and the object.
    let at_limit = "a".repeat(limit);
    e.execute(&format!("INSERT INTO blobs VALUES (1, '{at_limit}')"))
        .expect("a 1 MiB text value");
    let over = "b".repeat(limit + 1);
    assert_refused(
        &mut e,
        &format!("INSERT INTO blobs VALUES (2, '{over}')"),
        &["`body`", "blobs", "bytes"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT INTO texts VALUES ('{over}')"),
        &["`body`", "texts", "bytes"],
    );
    // In a multi-row statement, all or nothing.
    assert_refused(
        &mut e,
        &format!("INSERT INTO blobs VALUES (3, 'small'), (4, '{over}')"),
        &["`body`"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT INTO texts VALUES ('small'), ('{over}')"),
        &["`body`"],
    );
    // Through the batch API too.
    let batch = Batch::new().with_column("body", Column::text([over.as_str()]));
    assert_batch_refused(&mut e, "texts", &batch, false, &["`body`", "texts"]);
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![5, 6]))
        .with_column("body", Column::text(["fine", over.as_str()]));
    assert_batch_refused(&mut e, "blobs", &batch, true, &["`body`", "blobs"]);
    // Multi-byte characters count as bytes against the limit.
    let multibyte = "é".repeat(limit / 2 + 1);
    assert_refused(
        &mut e,
        &format!("INSERT INTO blobs VALUES (7, '{multibyte}')"),
        &["`body`", "bytes"],
    );

    // A huge value in the wrong place is not echoed back in full.
    assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES (3, 'x', '{over}', NULL)"),
        &["`price`", "bytes"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES (3, 'x', 1.0, '{over}')"),
        &["`added`"],
    );
    assert_refused(
        &mut e,
        &format!("SELECT id FROM items WHERE id = 1 '{over}'"),
        &["syntax error"],
    );
    assert_refused(
        &mut e,
        &format!("SELECT id FROM items WHERE id BETWEEN 1 AND '{over}'"),
        &["BETWEEN"],
    );
    // Values with line breaks do not break the message.
    assert_refused(
        &mut e,
        "INSERT INTO items VALUES ('one\ntwo', 'x', 1.0, NULL)",
        &["`id`"],
    );
    assert_refused(
        &mut e,
        "INSERT INTO items VALUES (3, 'x', 1.0, 'line\nbreak')",
        &["`added`"],
    );
    e.execute("INSERT INTO blobs VALUES (10, 'multi\nline')")
        .unwrap();
    let err = e
        .execute("INSERT INTO blobs VALUES (11, 'x'), (11, 'y')")
        .unwrap_err();
    assert_clear("duplicate key", &err, &["11", "blobs"]);
    e.execute("CREATE TABLE text_keys (k VARCHAR PRIMARY KEY)")
        .unwrap();
    e.execute(&format!(
        "INSERT INTO text_keys VALUES ('{at_limit}'), ('multi\nline')"
    ))
    .unwrap();
    assert_refused(
        &mut e,
        &format!("INSERT INTO text_keys VALUES ('{at_limit}')"),
        &["text_keys", "bytes"],
    );
    assert_refused(
        &mut e,
        "INSERT INTO text_keys VALUES ('multi\nline')",
        &["text_keys"],
    );

    // VARCHAR(n) counts characters.
    e.execute("INSERT INTO items VALUES (3, 'ééééé', NULL, NULL)")
        .expect("5 characters fit VARCHAR(5)");
    assert_refused(
        &mut e,
        "INSERT INTO items VALUES (4, 'sixsix', NULL, NULL)",
        &["`label`", "items", "VARCHAR(5)"],
    );
    assert_refused(
        &mut e,
        "INSERT INTO items VALUES (4, 'éééééé', NULL, NULL)",
        &["`label`", "VARCHAR(5)"],
    );
    assert_refused(
        &mut e,
        "INSERT OR REPLACE INTO items VALUES (1, 'longer', NULL, NULL)",
        &["`label`"],
    );
    assert_refused(
        &mut e,
        "INSERT INTO events VALUES (5, 'ninechars', 1.0, NULL)",
        &["`name`", "events", "VARCHAR(8)"],
    );
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![5, 6]))
        .with_column("name", Column::text(["ok", "far too long"]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`name`", "events"]);

    // The stored 1 MiB value is intact.
    let rs = e.query("SELECT body FROM blobs WHERE id = 1").unwrap();
    assert_eq!(rs.rows[0][0].to_string().len(), limit);
}

#[test]
fn not_null_violations_are_refused() {
    let mut e = engine();
    let cases: &[(&str, &[&str])] = &[
        (
            "INSERT INTO events VALUES (NULL, 'a', 1.0, NULL)",
            &["`k`", "events", "NOT NULL"],
        ),
        (
            "INSERT INTO events (name, v) VALUES ('a', 1.0)",
            &["`k`", "events", "NOT NULL"],
        ),
        (
            "INSERT INTO events VALUES (1, 'a', 1.0, NULL), (NULL, 'b', 2.0, NULL)",
            &["`k`", "events"],
        ),
        (
            "INSERT INTO items VALUES (3, NULL, 1.0, NULL)",
            &["`label`", "items", "NOT NULL"],
        ),
        (
            "INSERT INTO items (id, price) VALUES (3, 1.0)",
            &["`label`", "items"],
        ),
        (
            "INSERT INTO items VALUES (NULL, 'x', 1.0, NULL)",
            &["`id`", "items"],
        ),
        ("INSERT INTO items (label) VALUES ('x')", &["`id`", "items"]),
        (
            "INSERT OR REPLACE INTO items VALUES (1, NULL, 1.0, NULL)",
            &["`label`", "items"],
        ),
    ];
    for (sql, needles) in cases {
        assert_refused(&mut e, sql, needles);
    }
    // Through the batch API: a NULL mask, or a NOT NULL column left out.
    let batch = Batch::new()
        .with_column(
            "k",
            Column::bigint(vec![1, 2]).with_nulls(vec![false, true]),
        )
        .with_column("v", Column::double(vec![1.0, 2.0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`k`", "events"]);
    let batch = Batch::new().with_column("v", Column::double(vec![1.0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`k`", "events"]);
    let batch = Batch::new().with_column("id", Column::bigint(vec![7]));
    assert_batch_refused(&mut e, "items", &batch, false, &["`label`", "items"]);
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![7]).with_nulls(vec![true]))
        .with_column("label", Column::text(["x"]));
    assert_batch_refused(&mut e, "items", &batch, true, &["`id`", "items"]);
}

#[test]
fn one_bad_row_fails_the_whole_statement() {
    let mut e = engine();
    let good: Vec<String> = (0..99)
        .map(|i| {
            format!(
                "({}, 'n{}', {i}.5, '2026-01-02 00:{:02}:00')",
                i % 7,
                i % 5,
                i % 60
            )
        })
        .collect();
    let good = good.join(", ");
    let bad_rows: &[(&str, &[&str])] = &[
        ("('x', 'a', 1.0, NULL)", &["`k`", "events"]),
        ("(NULL, 'a', 1.0, NULL)", &["`k`", "events"]),
        ("(1, 'toolongname', 1.0, NULL)", &["`name`", "events"]),
        ("(1, 'a', 1.0, 'not a time')", &["`ts`", "events"]),
        ("(1 / 0, 'a', 1.0, NULL)", &["division by zero"]),
        ("(1, 'a')", &["events", "row 100"]),
        ("(1, 'a', 1.0, NULL, 5)", &["events", "row 100"]),
    ];
    for (bad, needles) in bad_rows {
        // Last, first, and in the middle of the statement.
        assert_refused(
            &mut e,
            &format!("INSERT INTO events VALUES {good}, {bad}"),
            needles,
        );
        assert_refused(
            &mut e,
            &format!("INSERT INTO events VALUES {bad}, {good}"),
            &needles[..1],
        );
        assert_refused(
            &mut e,
            &format!("INSERT INTO events VALUES {good}, {bad}, {good}"),
            &needles[..1],
        );
    }
    // Tables: a bad row or a duplicate key anywhere refuses every row.
    let rows: Vec<String> = (10..60)
        .map(|i| format!("({i}, 'r{i}', {i}.0, NULL)"))
        .collect();
    let rows = rows.join(", ");
    assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES {rows}, (60, NULL, 1.0, NULL)"),
        &["`label`", "items"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES {rows}, (2, 'dup', 1.0, NULL)"),
        &["2", "items", "duplicate"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES {rows}, (30, 'again', 1.0, NULL)"),
        &["30", "items"],
    );
    assert_refused(
        &mut e,
        &format!("INSERT OR REPLACE INTO items VALUES {rows}, (61, 'x', 'y', NULL)"),
        &["`price`"],
    );
    // An error raised while one view evaluates its rows keeps every view unchanged.
    e.execute("CREATE MATERIALIZED VIEW inverse AS SELECT 60 / k AS q, COUNT(*) AS n FROM events GROUP BY 60 / k")
        .unwrap();
    assert_refused(
        &mut e,
        &format!("INSERT INTO events VALUES {good}"),
        &["division by zero"],
    );
    // The same rows through the batch API.
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1, 2, 0]))
        .with_column("v", Column::double(vec![1.0, 2.0, 3.0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["division by zero"]);
    // The engine keeps working afterwards.
    e.execute("INSERT INTO events VALUES (3, 'ok', 1.0, NULL)")
        .unwrap();
    assert_eq!(count(&mut e, "SELECT n FROM overall"), 4);
    assert_eq!(count(&mut e, "SELECT n FROM inverse WHERE q = 20"), 1);
}

#[test]
fn deeply_nested_and_long_expressions_are_refused_without_crashing() {
    let mut e = engine();
    let depth = 10_000;
    let parens = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let nested = [
        format!("SELECT {parens} FROM items"),
        format!("SELECT id FROM items WHERE id = {parens}"),
        format!("INSERT INTO items VALUES ({parens}, 'x', 1.0, NULL)"),
        format!("INSERT INTO events VALUES ({parens}, 'x', 1.0, NULL)"),
        format!("DELETE FROM items WHERE id = {parens}"),
        format!(
            "CREATE MATERIALIZED VIEW deep AS SELECT k, SUM({parens}) AS s FROM events GROUP BY k"
        ),
        format!("SELECT {}1 FROM items", "- ".repeat(depth)),
        format!("SELECT id FROM items WHERE {}true", "NOT ".repeat(depth)),
        format!("SELECT {}", "(".repeat(depth)),
    ];
    for sql in &nested {
        assert_refused(&mut e, sql, &[]);
    }
    // Long flat chains parse without recursion but would overflow the stack later.
    let terms = 100_000;
    let chains = [
        format!(
            "SELECT id FROM items WHERE {}",
            (0..terms)
                .map(|i| format!("id = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        format!("SELECT {} AS s FROM items", vec!["id"; terms].join(" + ")),
        format!(
            "INSERT INTO items VALUES ({}, 'x', 1.0, NULL)",
            vec!["1"; terms].join(" * ")
        ),
        format!(
            "SELECT COUNT(*) FROM items GROUP BY id HAVING {}",
            vec!["COUNT(*) > 0"; terms].join(" AND ")
        ),
        format!(
            "SELECT id FROM items ORDER BY {}",
            vec!["id"; terms].join(" - ")
        ),
        format!(
            "SELECT id FROM items WHERE {}",
            vec!["label IS NULL"; terms].join(" IS NULL AND ")
        ),
        format!(
            "SELECT id FROM items WHERE label = {}",
            vec!["'a'"; terms].join(" || ")
        ),
    ];
    for sql in &chains {
        let start = Instant::now();
        assert_refused(&mut e, sql, &["operators"]);
        println!(
            "refused a chain of {terms} terms ({} bytes) in {:?}",
            sql.len(),
            start.elapsed()
        );
    }
    // Moderate expressions still work.
    let ors = (0..40)
        .map(|i| format!("id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert_eq!(
        e.query(&format!("SELECT id FROM items WHERE {ors}"))
            .unwrap()
            .rows
            .len(),
        2
    );
    let nested = format!("{}id{}", "(".repeat(30), ")".repeat(30));
    assert_eq!(
        e.query(&format!("SELECT {nested} AS i FROM items ORDER BY i"))
            .unwrap()
            .rows
            .len(),
        2
    );
}

/// A huge name is never echoed back whole: every error quotes a short excerpt of it, and a
/// name longer than 255 bytes is refused where it is declared.
#[test]
fn errors_quote_a_short_excerpt_of_a_huge_name() {
    let name = "n".repeat(1 << 20);
    let mut e = engine();
    for sql in [
        format!("SELECT * FROM {name}"),
        format!("CREATE TABLE {name} (id BIGINT PRIMARY KEY)"),
        format!("CREATE TABLE wide ({name} BIGINT PRIMARY KEY)"),
        format!("DROP TABLE {name}"),
        format!("INSERT INTO items ({name}) VALUES (1)"),
        format!("SELECT {name} FROM items"),
        format!("SELECT \"{name}\"(1) FROM items"),
        format!("UPDATE items SET {name} = 1"),
        format!("INSERT INTO items VALUES ('{name}', 'x', 1.0, '2026-01-01')"),
    ] {
        let err = e.execute(&sql).expect_err("refused").to_string();
        assert!(err.len() < 1000, "{} bytes: {}…", err.len(), &err[..200]);
        assert!(err.contains("bytes"), "{err}");
    }
    assert_eq!(count(&mut e, "SELECT COUNT(*) FROM items"), 2);
    let at_limit = "m".repeat(255);
    e.execute(&format!("CREATE TABLE {at_limit} (id BIGINT PRIMARY KEY)"))
        .unwrap();
}

#[test]
fn ten_megabyte_statements_finish_or_fail_cleanly() {
    let ten_mb = 10 << 20;

    // A multi-row INSERT of ~10 MB into a table.
    let mut e = engine();
    let mut sql = String::with_capacity(ten_mb + 100);
    sql.push_str("INSERT INTO items VALUES ");
    let mut rows = 0i64;
    while sql.len() < ten_mb {
        if rows > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "({}, 'r{}', {}.25, '2026-01-01 00:00:00')",
            rows + 100,
            rows % 1000,
            rows
        ));
        rows += 1;
    }
    let start = Instant::now();
    let result = e.execute(&sql);
    println!(
        "10 MB INSERT of {rows} rows into a table: {} in {:?}",
        outcome(&result),
        start.elapsed()
    );
    match result {
        Ok(_) => assert_eq!(count(&mut e, "SELECT COUNT(*) FROM items"), rows + 2),
        Err(err) => {
            // e.g. bare-metal: more keys than the table's fixed capacity.
            assert_clear("10 MB INSERT", &err, &["items"]);
            assert_eq!(count(&mut e, "SELECT COUNT(*) FROM items"), 2);
        }
    }

    // The same size into a source with four views.
    let mut e = engine();
    let mut sql = String::with_capacity(ten_mb + 100);
    sql.push_str("INSERT INTO events VALUES ");
    let mut rows = 0i64;
    while sql.len() < ten_mb {
        if rows > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "({}, 'n{}', {}.5, '2026-01-01 00:{:02}:00')",
            rows % 1000,
            rows % 10,
            rows % 100,
            rows % 60
        ));
        rows += 1;
    }
    let start = Instant::now();
    let result = e.execute(&sql);
    println!(
        "10 MB INSERT of {rows} rows into a source: {} in {:?}",
        outcome(&result),
        start.elapsed()
    );
    match result {
        Ok(_) => {
            assert_eq!(count(&mut e, "SELECT n FROM overall"), rows + 3);
            assert_eq!(count(&mut e, "SELECT COUNT(*) FROM by_k"), 1000);
        }
        Err(err) => {
            assert_clear("10 MB INSERT into a source", &err, &[]);
            assert_eq!(count(&mut e, "SELECT n FROM overall"), 3);
        }
    }

    // A 10 MB string literal: over the text limit, refused without echoing it.
    let mut e = engine();
    let literal = "z".repeat(ten_mb);
    let start = Instant::now();
    let err = assert_refused(
        &mut e,
        &format!("INSERT INTO items VALUES (3, 'x', NULL, '{literal}')"),
        &["`added`"],
    );
    println!(
        "10 MB string literal into a TIMESTAMP: refused in {:?}: {err}",
        start.elapsed()
    );
    let start = Instant::now();
    e.execute("CREATE TABLE blobs (id BIGINT PRIMARY KEY, body VARCHAR)")
        .unwrap();
    let err = assert_refused(
        &mut e,
        &format!("INSERT INTO blobs VALUES (1, '{literal}')"),
        &["`body`", "bytes"],
    );
    println!(
        "10 MB string literal into a VARCHAR: refused in {:?}: {err}",
        start.elapsed()
    );
    // In a query it is just a value to compare with.
    let start = Instant::now();
    let result = e.execute(&format!("SELECT id FROM items WHERE label = '{literal}'"));
    println!(
        "10 MB string literal in a WHERE clause: {} in {:?}",
        outcome(&result),
        start.elapsed()
    );
    match result {
        Ok(r) => assert!(r[0].rows.is_empty()),
        Err(err) => assert_clear("10 MB literal in WHERE", &err, &[]),
    }

    // Beyond the statement size limit: refused before it is even tokenized.
    let huge = format!(
        "SELECT id FROM items WHERE label = '{}'",
        "q".repeat(strata::sql::MAX_SQL_BYTES)
    );
    let start = Instant::now();
    let err = assert_refused(&mut e, &huge, &["too large", "bytes"]);
    println!(
        "{} byte statement: refused in {:?}: {err}",
        huge.len(),
        start.elapsed()
    );
}

#[test]
fn batch_api_errors_are_refused() {
    let mut e = engine();
    // Unknown target, a view, a source upsert.
    let batch = Batch::new().with_column("id", Column::bigint(vec![1]));
    assert_batch_refused(&mut e, "nope", &batch, false, &["`nope`"]);
    assert_batch_refused(&mut e, "by_k", &batch, false, &["`by_k`", "events"]);
    let batch = Batch::new().with_column("k", Column::bigint(vec![1]));
    assert_batch_refused(&mut e, "events", &batch, true, &["`events`"]);
    // Unknown column.
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1]))
        .with_column("nope", Column::bigint(vec![1]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`nope`", "events"]);
    // Wrong column types.
    let batch = Batch::new().with_column("k", Column::text(["1"]));
    assert_batch_refused(
        &mut e,
        "events",
        &batch,
        false,
        &["`k`", "events", "VARCHAR", "BIGINT"],
    );
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1]))
        .with_column("ts", Column::bigint(vec![1]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`ts`", "TIMESTAMP"]);
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1]))
        .with_column("v", Column::boolean(vec![true]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`v`", "DOUBLE"]);
    let batch = Batch::new()
        .with_column("id", Column::double(vec![1.0]))
        .with_column("label", Column::text(["x"]));
    assert_batch_refused(&mut e, "items", &batch, false, &["`id`", "items"]);
    // Ragged lengths, a NULL mask of the wrong length, a column given twice.
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1, 2, 3]))
        .with_column("v", Column::double(vec![1.0, 2.0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`v`"]);
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1]))
        .with_column("v", Column::double(vec![1.0, 2.0, 3.0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`v`"]);
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1, 2]))
        .with_column("v", Column::double(vec![1.0, 2.0]).with_nulls(vec![false]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`v`"]);
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![5, 6]))
        .with_column("label", Column::text(["a", "b", "c"]));
    assert_batch_refused(&mut e, "items", &batch, true, &["`label`"]);
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1]))
        .with_column("k", Column::bigint(vec![2]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`k`"]);
    // Ragged in schema order (the copy-free path).
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![1, 2]))
        .with_column("name", Column::text(["a", "b"]))
        .with_column("v", Column::double(vec![1.0]))
        .with_column("ts", Column::timestamp(vec![0, 0]));
    assert_batch_refused(&mut e, "events", &batch, false, &["`v`"]);
    // Duplicate keys, in the table or within the batch.
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![5, 1]))
        .with_column("label", Column::text(["five", "dup"]));
    assert_batch_refused(&mut e, "items", &batch, false, &["1", "items"]);
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![5, 5]))
        .with_column("label", Column::text(["five", "again"]));
    assert_batch_refused(&mut e, "items", &batch, false, &["5", "items"]);

    // A good batch still works, and empty batches are no-ops.
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![7, 7]))
        .with_column("v", Column::double(vec![1.0, 2.0]));
    assert_eq!(e.insert_batch("events", &batch).unwrap(), 2);
    assert_eq!(count(&mut e, "SELECT n FROM by_k WHERE k = 7"), 2);
    assert_eq!(e.insert_batch("events", &Batch::new()).unwrap(), 0);
    let empty = Batch::new().with_column("k", Column::bigint(vec![]));
    assert_eq!(e.insert_batch("events", &empty).unwrap(), 0);
    assert_eq!(count(&mut e, "SELECT n FROM overall"), 5);
}

/// bare-metal: the values a DISTINCT aggregate has seen live in a static set of the view's
/// capacity; a batch that would overflow it is refused whole, its new groups undone.
#[cfg(feature = "bare-metal")]
#[test]
fn a_full_distinct_set_refuses_the_batch_atomically() {
    let mut e = Engine::builder()
        .ephemeral()
        .capacity(4)
        .build()
        .expect("engine");
    e.execute(
        "CREATE SOURCE s (g BIGINT NOT NULL, v BIGINT);
         CREATE MATERIALIZED VIEW u AS SELECT g, COUNT(DISTINCT v) AS users, COUNT(*) AS n FROM s GROUP BY g;",
    )
    .unwrap();
    e.execute("INSERT INTO s VALUES (1, 1), (1, 2), (1, 2), (2, 1), (2, NULL)")
        .unwrap();
    // (1, 3) and (2, 2) would be the 4th and 5th pairs of a set of 4; group 3 is new.
    let err = assert_refused(
        &mut e,
        "INSERT INTO s VALUES (3, 9), (1, 3), (2, 2)",
        &["`u`", "4", "full"],
    );
    assert!(err.contains("bare-metal"), "{err}");
    assert_eq!(count(&mut e, "SELECT COUNT(*) FROM u"), 2);
    assert_eq!(count(&mut e, "SELECT users FROM u WHERE g = 1"), 2);
    assert_eq!(count(&mut e, "SELECT n FROM u WHERE g = 2"), 2);
    // Values already seen take no room: still accepted.
    e.execute("INSERT INTO s VALUES (1, 1), (2, 1), (1, 3)")
        .unwrap();
    assert_eq!(count(&mut e, "SELECT users FROM u WHERE g = 1"), 3);
    assert_eq!(count(&mut e, "SELECT n FROM u WHERE g = 1"), 5);
}

/// bare-metal: a full static state refuses the whole statement or batch, names the object
/// and its capacity, and leaves every other table and view working.
#[cfg(feature = "bare-metal")]
#[test]
fn full_state_is_refused_atomically() {
    const CAP: usize = 4;
    let mut e = Engine::builder()
        .ephemeral()
        .capacity(CAP)
        .build()
        .expect("engine");
    assert_eq!(e.capacity(), CAP);
    e.execute(
        "CREATE SOURCE s (k BIGINT NOT NULL, g BIGINT NOT NULL, v BIGINT);
         CREATE MATERIALIZED VIEW a_by_g AS SELECT g, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY g;
         CREATE MATERIALIZED VIEW b_by_k AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;
         CREATE MATERIALIZED VIEW c_total AS SELECT COUNT(*) AS n, SUM(v) AS total FROM s;
         CREATE MATERIALIZED VIEW d_by_text AS SELECT 'k' || k AS name, COUNT(*) AS n FROM s GROUP BY 'k' || k;
         CREATE TABLE t (id BIGINT PRIMARY KEY, note VARCHAR);
         CREATE TABLE other (id BIGINT PRIMARY KEY);
         CREATE SOURCE s2 (x BIGINT);
         CREATE MATERIALIZED VIEW by_x AS SELECT x, COUNT(*) AS n FROM s2 GROUP BY x;",
    )
    .unwrap();
    // Fill b_by_k (and d_by_text) to capacity: 4 keys, in one group of a_by_g.
    e.execute("INSERT INTO s VALUES (1, 0, 1), (2, 0, 1), (3, 0, 1), (4, 0, 1)")
        .unwrap();
    e.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
        .unwrap();

    // A new k: b_by_k is full. a_by_g would have created group 1 first; that is undone.
    let err = assert_refused(
        &mut e,
        "INSERT INTO s VALUES (1, 0, 10), (5, 1, 10)",
        &["`b_by_k`", "4", "full"],
    );
    assert!(err.contains("bare-metal"), "{err}");
    // The same through the batch API, with the new key first.
    let batch = Batch::new()
        .with_column("k", Column::bigint(vec![6, 1]))
        .with_column("g", Column::bigint(vec![2, 0]))
        .with_column("v", Column::bigint(vec![100, 100]));
    assert_batch_refused(&mut e, "s", &batch, false, &["`b_by_k`", "4"]);
    assert_eq!(count(&mut e, "SELECT COUNT(*) FROM a_by_g"), 1);
    assert_eq!(count(&mut e, "SELECT n FROM c_total"), 4);
    assert_eq!(count(&mut e, "SELECT total FROM c_total"), 4);

    // Rows for existing keys are still accepted everywhere.
    e.execute("INSERT INTO s VALUES (1, 0, 10), (4, 0, 10)")
        .unwrap();
    assert_eq!(count(&mut e, "SELECT n FROM b_by_k WHERE k = 1"), 2);
    assert_eq!(count(&mut e, "SELECT total FROM a_by_g WHERE g = 0"), 24);
    assert_eq!(
        count(&mut e, "SELECT n FROM d_by_text WHERE name = 'k4'"),
        2
    );

    // a_by_g still has room: the rolled-back groups left no trace, new ones work normally.
    e.execute("DROP MATERIALIZED VIEW b_by_k; DROP MATERIALIZED VIEW d_by_text")
        .unwrap();
    e.execute("INSERT INTO s VALUES (9, 1, 5), (9, 2, 5), (9, 1, 5)")
        .unwrap();
    let rs = e
        .query("SELECT g, n, total FROM a_by_g ORDER BY g")
        .unwrap();
    let shown: Vec<String> = rs
        .rows
        .iter()
        .map(|r| format!("{} {} {}", r[0], r[1], r[2]))
        .collect();
    assert_eq!(shown, ["0 6 24", "1 2 10", "2 1 5"]);
    e.execute("INSERT INTO s VALUES (9, 3, 1)").unwrap();
    assert_refused(&mut e, "INSERT INTO s VALUES (9, 4, 1)", &["`a_by_g`", "4"]);

    // Tables: a new key beyond capacity fails the whole statement, naming the table.
    let err = assert_refused(
        &mut e,
        "INSERT INTO t VALUES (5, 'e')",
        &["table `t`", "4", "full"],
    );
    assert!(err.contains("bare-metal"), "{err}");
    assert_refused(
        &mut e,
        "INSERT OR REPLACE INTO t VALUES (1, 'A'), (5, 'e')",
        &["`t`", "4"],
    );
    let batch = Batch::new()
        .with_column("id", Column::bigint(vec![2, 6]))
        .with_column("note", Column::text(["B", "f"]));
    assert_batch_refused(&mut e, "t", &batch, true, &["`t`", "4"]);
    // Replacing existing keys needs no room; deleting makes room.
    e.execute("INSERT OR REPLACE INTO t VALUES (1, 'A'), (2, 'B')")
        .unwrap();
    e.execute("DELETE FROM t WHERE id = 3").unwrap();
    e.execute("INSERT INTO t VALUES (5, 'e')").unwrap();
    let rs = e.query("SELECT id, note FROM t ORDER BY id").unwrap();
    let shown: Vec<String> = rs
        .rows
        .iter()
        .map(|r| format!("{}={}", r[0], r[1]))
        .collect();
    assert_eq!(shown, ["1=A", "2=B", "4=d", "5=e"]);

    // Other tables and views keep working, up to their own capacity.
    e.execute("INSERT INTO other VALUES (1), (2), (3), (4)")
        .unwrap();
    e.execute("INSERT INTO s2 VALUES (1), (2), (3), (4), (1)")
        .unwrap();
    assert_eq!(count(&mut e, "SELECT n FROM by_x WHERE x = 1"), 2);
    assert_refused(&mut e, "INSERT INTO other VALUES (5)", &["`other`"]);
    assert_refused(&mut e, "INSERT INTO s2 VALUES (5)", &["`by_x`"]);

    // A query's own aggregation is not bounded by the state capacity.
    let rs = e
        .query("SELECT id, COUNT(*) AS n FROM t GROUP BY id")
        .unwrap();
    assert_eq!(rs.rows.len(), 4);

    // Capacities beyond the tier's maximum are refused when the engine is built.
    let err = Engine::builder().capacity(usize::MAX).build().unwrap_err();
    assert_clear("capacity", &err, &["capacity"]);
}
