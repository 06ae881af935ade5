//! Random expressions over random rows, evaluated by Strata and by SQLite (the reference),
//! must give the same answers, row by row: in the select list and as a `WHERE`.
//!
//! SQLite's arithmetic differs from Strata's (and PostgreSQL's) in two documented ways:
//! integer overflow becomes a REAL there and a division or modulo by zero is NULL, where
//! Strata fails the statement. So the SQLite side spells `+ - * / %` and negation as
//! functions registered here that fail the way Strata does; then "Strata fails" must mean
//! "SQLite fails" and the other way round. Booleans are compared as 1/0/NULL.
//!
//! The rows cover NULLs, zero, ±1, the ends of BIGINT, empty strings and non-ASCII text.

use proptest::prelude::*;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as Lite, ValueRef};
use strata::{Engine, Value};

/// An expression as each engine spells it.
#[derive(Clone, Debug)]
struct Sql {
    strata: String,
    sqlite: String,
}

impl Sql {
    fn same(text: impl Into<String>) -> Sql {
        let text = text.into();
        Sql {
            strata: text.clone(),
            sqlite: text,
        }
    }

    /// `f(args)` in both, or `strata_op` between two operands in Strata and the checked
    /// function `lite_fn` in SQLite.
    fn binary(strata_op: &str, lite_fn: &str, l: &Sql, r: &Sql) -> Sql {
        Sql {
            strata: format!("({} {strata_op} {})", l.strata, r.strata),
            sqlite: format!("{lite_fn}({}, {})", l.sqlite, r.sqlite),
        }
    }

    /// The same template in both engines, `{}` replaced by the operands in order.
    fn template(t: &str, parts: &[&Sql]) -> Sql {
        let fill = |pick: fn(&Sql) -> &str| {
            let mut out = String::new();
            let mut pieces = t.split("{}");
            out.push_str(pieces.next().unwrap_or_default());
            for (piece, part) in pieces.zip(parts) {
                out.push_str(pick(part));
                out.push_str(piece);
            }
            out
        };
        Sql {
            strata: fill(|s| &s.strata),
            sqlite: fill(|s| &s.sqlite),
        }
    }
}

const INT_LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "-13",
    "1000",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775807",
];

fn int_leaf() -> impl Strategy<Value = Sql> {
    prop_oneof![
        2 => prop::sample::select(vec!["a", "b"]).prop_map(Sql::same),
        1 => prop::sample::select(INT_LITERALS).prop_map(Sql::same),
        1 => Just(Sql::same("NULL")),
    ]
}

fn text_leaf() -> impl Strategy<Value = Sql> {
    prop_oneof![
        2 => Just(Sql::same("s")),
        1 => prop::sample::select(vec!["''", "'a'", "'Ab'", "'ü'", "'%'", "'x_y'"]).prop_map(Sql::same),
    ]
}

fn double_leaf() -> impl Strategy<Value = Sql> {
    prop_oneof![
        2 => Just(Sql::same("x")),
        1 => prop::sample::select(vec!["0.0", "1.5", "-2.25", "1000000.0"]).prop_map(Sql::same),
    ]
}

/// BIGINT expressions.
fn int_expr() -> BoxedStrategy<Sql> {
    int_leaf()
        .prop_recursive(4, 24, 3, |inner| {
            let int = inner.clone();
            prop_oneof![
                (int.clone(), int.clone(), 0..5usize).prop_map(|(l, r, op)| {
                    let (o, f) = [
                        ("+", "s_add"),
                        ("-", "s_sub"),
                        ("*", "s_mul"),
                        ("/", "s_div"),
                        ("%", "s_mod"),
                    ][op];
                    Sql::binary(o, f, &l, &r)
                }),
                int.clone().prop_map(|e| Sql {
                    strata: format!("(- {})", e.strata),
                    sqlite: format!("s_neg({})", e.sqlite),
                }),
                int.clone().prop_map(|e| Sql::template("abs({})", &[&e])),
                (bool_expr_of(int.clone()), int.clone(), int.clone()).prop_map(|(c, t, e)| {
                    Sql::template("CASE WHEN {} THEN {} ELSE {} END", &[&c, &t, &e])
                }),
                (int.clone(), int.clone())
                    .prop_map(|(l, r)| Sql::template("coalesce({}, {})", &[&l, &r])),
                (int.clone(), int.clone())
                    .prop_map(|(l, r)| Sql::template("nullif({}, {})", &[&l, &r])),
                text_expr().prop_map(|t| Sql::template("length({})", &[&t])),
            ]
        })
        .boxed()
}

/// BOOLEAN expressions over the given BIGINT expressions.
fn bool_expr_of(int: impl Strategy<Value = Sql> + Clone + 'static) -> BoxedStrategy<Sql> {
    let cmp = (int.clone(), int.clone(), 0..6usize).prop_map(|(l, r, op)| {
        let o = ["=", "<>", "<", "<=", ">", ">="][op];
        Sql::template(&format!("({{}} {o} {{}})"), &[&l, &r])
    });
    let leaf = prop_oneof![
        4 => cmp,
        1 => int.clone().prop_map(|e| Sql::template("({} IS NULL)", &[&e])),
        1 => (int.clone(), int.clone(), int.clone())
            .prop_map(|(v, lo, hi)| Sql::template("({} BETWEEN {} AND {})", &[&v, &lo, &hi])),
        1 => (int.clone(), prop::sample::select(vec!["(1, 2, 3)", "(0, NULL)", "(-1)"]))
            .prop_map(|(v, list)| Sql::template(&format!("({{}} IN {list})"), &[&v])),
        1 => (int.clone(), int.clone()).prop_map(|(l, r)| Sql {
            strata: format!("({} IS DISTINCT FROM {})", l.strata, r.strata),
            sqlite: format!("({} IS NOT {})", l.sqlite, r.sqlite),
        }),
        1 => (text_expr(), prop::sample::select(vec!["'a%'", "'%b'", "'_'", "'%ü%'", "''", "'%'"]))
            .prop_map(|(t, p)| Sql::template(&format!("({{}} LIKE {p})"), &[&t])),
        1 => (double_expr(), double_expr(), 0..3usize).prop_map(|(l, r, op)| {
            let o = ["=", "<", ">="][op];
            Sql::template(&format!("({{}} {o} {{}})"), &[&l, &r])
        }),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| Sql::template("({} AND {})", &[&l, &r])),
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| Sql::template("({} OR {})", &[&l, &r])),
            inner.clone().prop_map(|e| Sql::template("(NOT {})", &[&e])),
        ]
    })
    .boxed()
}

fn text_expr() -> impl Strategy<Value = Sql> {
    text_leaf().prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| Sql::template("({} || {})", &[&l, &r])),
            (inner.clone(), 1..4i64, 0..3i64).prop_map(|(t, from, len)| Sql::template(
                &format!("substr({{}}, {from}, {len})"),
                &[&t]
            )),
            inner
                .clone()
                .prop_map(|t| Sql::template("replace({}, 'a', 'ü')", &[&t])),
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| Sql::template("coalesce({}, {})", &[&l, &r])),
        ]
    })
}

fn double_expr() -> impl Strategy<Value = Sql> {
    double_leaf().prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone(), 0..4usize).prop_map(|(l, r, op)| {
                let (o, f) = [
                    ("+", "s_add"),
                    ("-", "s_sub"),
                    ("*", "s_mul"),
                    ("/", "s_div"),
                ][op];
                Sql::binary(o, f, &l, &r)
            }),
            (inner.clone(), int_leaf()).prop_map(|(l, r)| Sql::binary("+", "s_add", &l, &r)),
        ]
    })
}

#[derive(Clone, Debug)]
struct Row {
    a: Option<i64>,
    b: Option<i64>,
    x: Option<f64>,
    s: Option<String>,
}

fn row() -> impl Strategy<Value = Row> {
    let int = prop_oneof![
        3 => (-20i64..20).prop_map(Some),
        1 => prop::sample::select(vec![i64::MAX, i64::MIN + 1, i64::MIN, 1 << 40]).prop_map(Some),
        1 => Just(None),
    ];
    let double = prop_oneof![
        3 => (-100i64..100).prop_map(|v| Some(v as f64 / 4.0)),
        1 => Just(None),
    ];
    let text = prop_oneof![
        3 => prop::sample::select(vec!["", "a", "ab", "Ab", "bab", "ü", "äbc", "x_y", "100%"])
            .prop_map(|s| Some(s.to_string())),
        1 => Just(None),
    ];
    (int.clone(), int, double, text).prop_map(|(a, b, x, s)| Row { a, b, x, s })
}

/// A number as SQLite's functions see it.
enum Num {
    Int(i64),
    Real(f64),
}

fn num(v: ValueRef<'_>) -> Option<Num> {
    match v {
        ValueRef::Integer(i) => Some(Num::Int(i)),
        ValueRef::Real(r) => Some(Num::Real(r)),
        _ => None,
    }
}

fn as_real(n: &Num) -> f64 {
    match n {
        Num::Int(i) => *i as f64,
        Num::Real(r) => *r,
    }
}

fn fail(message: &str) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

/// Registers `name(a, b)`: NULL in, NULL out; integers checked by `int` (`None`: the error
/// Strata gives), reals by `real`.
fn register_binary(
    db: &rusqlite::Connection,
    name: &str,
    int: fn(i64, i64) -> Result<i64, &'static str>,
    real: fn(f64, f64) -> Result<f64, &'static str>,
) {
    db.create_scalar_function(
        name,
        2,
        FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx: &Context<'_>| {
            let (Some(l), Some(r)) = (num(ctx.get_raw(0)), num(ctx.get_raw(1))) else {
                return Ok(Lite::Null);
            };
            Ok(match (l, r) {
                (Num::Int(l), Num::Int(r)) => Lite::Integer(int(l, r).map_err(fail)?),
                (l, r) => Lite::Real(real(as_real(&l), as_real(&r)).map_err(fail)?),
            })
        },
    )
    .unwrap();
}

const OVERFLOW: &str = "overflow";
const ZERO: &str = "division by zero";

fn reference_db() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("PRAGMA case_sensitive_like = ON;")
        .unwrap();
    register_binary(
        &db,
        "s_add",
        |a, b| a.checked_add(b).ok_or(OVERFLOW),
        |a, b| Ok(a + b),
    );
    register_binary(
        &db,
        "s_sub",
        |a, b| a.checked_sub(b).ok_or(OVERFLOW),
        |a, b| Ok(a - b),
    );
    register_binary(
        &db,
        "s_mul",
        |a, b| a.checked_mul(b).ok_or(OVERFLOW),
        |a, b| Ok(a * b),
    );
    register_binary(
        &db,
        "s_div",
        |a, b| {
            if b == 0 {
                Err(ZERO)
            } else {
                a.checked_div(b).ok_or(OVERFLOW)
            }
        },
        |a, b| if b == 0.0 { Err(ZERO) } else { Ok(a / b) },
    );
    register_binary(
        &db,
        "s_mod",
        |a, b| {
            if b == 0 {
                Err(ZERO)
            } else {
                a.checked_rem(b).ok_or(OVERFLOW)
            }
        },
        |a, b| if b == 0.0 { Err(ZERO) } else { Ok(a % b) },
    );
    db.create_scalar_function(
        "s_neg",
        1,
        FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx: &Context<'_>| {
            Ok(match num(ctx.get_raw(0)) {
                None => Lite::Null,
                Some(Num::Int(i)) => Lite::Integer(i.checked_neg().ok_or_else(|| fail(OVERFLOW))?),
                Some(Num::Real(r)) => Lite::Real(-r),
            })
        },
    )
    .unwrap();
    db
}

const SCHEMA: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, a BIGINT, b BIGINT, x DOUBLE, s TEXT)";

fn literal<T: ToString>(v: &Option<T>, quote: bool) -> String {
    match v {
        None => "NULL".into(),
        Some(v) if quote => format!("'{}'", v.to_string().replace('\'', "''")),
        Some(v) => v.to_string(),
    }
}

fn insert(rows: &[Row]) -> String {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let x = r.x.map(|x| format!("{x:?}"));
            // i64::MIN as a literal: both engines read the negation of its magnitude.
            format!(
                "({i}, {}, {}, {}, {})",
                literal(&r.a, false),
                literal(&r.b, false),
                literal(&x, false),
                literal(&r.s, true)
            )
        })
        .collect();
    format!("INSERT INTO t VALUES {}", values.join(", "))
}

/// One answer: rows of values as text that compares numbers by value, or the error.
type Answer = Result<Vec<Vec<String>>, String>;

fn show_strata(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => format!("{}", *i as f64),
        Value::Double(d) => format!("{d}"),
        Value::Bool(b) => format!("{}", *b as i64 as f64),
        Value::Text(t) => format!("'{t}'"),
        other => format!("{other}"),
    }
}

fn show_lite(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("{}", i as f64),
        ValueRef::Real(r) => format!("{r}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(_) => "blob".into(),
    }
}

fn strata_answer(engine: &mut Engine, sql: &str) -> Answer {
    engine
        .query(sql)
        .map(|rs| {
            rs.rows
                .iter()
                .map(|r| r.iter().map(show_strata).collect())
                .collect()
        })
        .map_err(|e| e.to_string())
}

fn sqlite_answer(db: &rusqlite::Connection, sql: &str) -> Answer {
    let run = || -> rusqlite::Result<Vec<Vec<String>>> {
        let mut stmt = db.prepare(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((0..n).map(|i| show_lite(row.get_ref(i).unwrap())).collect());
        }
        Ok(out)
    };
    run().map_err(|e| e.to_string())
}

/// Both succeed with the same rows, or both fail. SQL leaves the order in which the
/// operands of AND, OR and BETWEEN and the terms of a WHERE are evaluated to the engine
/// (SQLite reorders a WHERE's terms; PostgreSQL may too), so where that order matters an
/// arithmetic error on one side only is no disagreement.
fn agree(strata: &Answer, sqlite: &Answer, order_free: bool) -> bool {
    let arithmetic = |e: &str| e.contains("overflow") || e.contains("division by zero");
    match (strata, sqlite) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => !order_free && arithmetic(e),
    }
}

fn bool_value(b: &Sql) -> Sql {
    Sql::template("CASE WHEN {} THEN 1 WHEN NOT {} THEN 0 END", &[b, b])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn expressions_match_sqlite(
        rows in prop::collection::vec(row(), 1..8),
        int in int_expr(),
        cond in bool_expr_of(int_expr()),
        text in text_expr(),
        double in double_expr(),
    ) {
        let mut engine = Engine::builder().ephemeral().build().unwrap();
        let db = reference_db();
        let insert = insert(&rows);
        engine.execute(SCHEMA).unwrap();
        engine.execute(&insert).unwrap();
        db.execute_batch(&format!("{SCHEMA}; {insert}")).unwrap();
        let as_value = bool_value(&cond);
        let queries = [
            Sql::template("SELECT id, {} FROM t ORDER BY id", &[&int]),
            Sql::template("SELECT id, {} FROM t ORDER BY id", &[&as_value]),
            Sql::template("SELECT id, {} FROM t ORDER BY id", &[&text]),
            Sql::template("SELECT id, {} FROM t ORDER BY id", &[&double]),
            Sql::template("SELECT id FROM t WHERE {} ORDER BY id", &[&cond]),
        ];
        for q in &queries {
            let ours = strata_answer(&mut engine, &q.strata);
            let reference = sqlite_answer(&db, &q.sqlite);
            let order_free = !q.strata.contains(" AND ") && !q.strata.contains(" OR ");
            prop_assert!(
                agree(&ours, &reference, order_free),
                "rows: {rows:?}\nstrata: {}\n  {ours:?}\nsqlite: {}\n  {reference:?}",
                q.strata, q.sqlite
            );
        }
    }
}
