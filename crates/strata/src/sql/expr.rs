//! Bound scalar expressions: typed at bind time, evaluated per row.

use super::scalar::{self, Func, TrimSide};
use super::time;
use super::Declared;
use crate::error::{ExecError, SqlError};
use crate::types::{parse_timestamp, DataType, Value};
use sqlparser::ast;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

impl BinOp {
    /// The operator as written in SQL, for messages.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Concat => "||",
        }
    }
}

/// A scalar expression over the columns of one row, with its type resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Column {
        index: usize,
        ty: DataType,
    },
    Literal(Value),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull {
        arg: Box<Expr>,
        negated: bool,
    },
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        ty: Option<DataType>,
    },
    /// `tumble(ts, INTERVAL …)` (window start) or `tumble_end` (start + width).
    Tumble {
        ts: Box<Expr>,
        width_ms: i64,
        end: bool,
    },
    /// `CASE WHEN c THEN r … ELSE e END` (a simple `CASE x WHEN v …` is bound to `x = v`
    /// conditions): the result of the first true condition, else `otherwise`.
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
        ty: Option<DataType>,
    },
    /// `arg [NOT] IN (list)`: NULL when no element equals `arg` and one is NULL.
    InList {
        arg: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `arg [NOT] LIKE pattern [ESCAPE c]`, or `ILIKE` (`fold_case`).
    Like {
        arg: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        fold_case: bool,
        negated: bool,
    },
    /// `left IS [NOT] DISTINCT FROM right`: `=` where NULL equals NULL, never NULL itself.
    Distinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    /// `CAST(arg AS to)`, `arg::to`; `declared` may narrow `to`'s range (`INT`).
    Cast {
        arg: Box<Expr>,
        to: DataType,
        declared: Declared,
    },
    /// A scalar function (see [`super::scalar`]).
    Call {
        func: Func,
        args: Vec<Expr>,
        ty: Option<DataType>,
    },
}

/// Read access to the values of one row.
pub trait Row {
    fn value(&self, index: usize) -> Value;
}

impl Row for [Value] {
    #[inline]
    fn value(&self, index: usize) -> Value {
        self[index].clone()
    }
}

impl Expr {
    /// The result type; `None` for an untyped NULL literal.
    pub fn ty(&self) -> Option<DataType> {
        match self {
            Expr::Column { ty, .. } => Some(*ty),
            Expr::Literal(v) => v.data_type(),
            Expr::Not(_) | Expr::IsNull { .. } => Some(DataType::Boolean),
            Expr::Neg(e) => e.ty(),
            Expr::Binary { ty, .. } => *ty,
            Expr::Tumble { .. } => Some(DataType::Timestamp),
            Expr::Case { ty, .. } | Expr::Call { ty, .. } => *ty,
            Expr::InList { .. } | Expr::Like { .. } | Expr::Distinct { .. } => {
                Some(DataType::Boolean)
            }
            Expr::Cast { to, .. } => Some(*to),
        }
    }

    /// The expressions this one is made of.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column { .. } | Expr::Literal(_) => vec![],
            Expr::Not(a) | Expr::Neg(a) | Expr::IsNull { arg: a, .. } => vec![a],
            Expr::Cast { arg: a, .. } | Expr::Tumble { ts: a, .. } => vec![a],
            Expr::Binary { left, right, .. } | Expr::Distinct { left, right, .. } => {
                vec![left, right]
            }
            Expr::Like { arg, pattern, .. } => vec![arg, pattern],
            Expr::InList { arg, list, .. } => std::iter::once(&**arg).chain(list).collect(),
            Expr::Case {
                branches,
                otherwise,
                ..
            } => branches
                .iter()
                .flat_map(|(c, r)| [c, r])
                .chain(std::iter::once(&**otherwise))
                .collect(),
            Expr::Call { args, .. } => args.iter().collect(),
        }
    }

    /// The column this expression reads directly, if it is a bare column reference.
    pub fn as_column(&self) -> Option<usize> {
        match self {
            Expr::Column { index, .. } => Some(*index),
            _ => None,
        }
    }

    pub fn eval<R: Row + ?Sized>(&self, row: &R) -> Result<Value, ExecError> {
        Ok(match self {
            Expr::Column { index, .. } => row.value(*index),
            Expr::Literal(v) => v.clone(),
            Expr::Not(e) => match e.eval(row)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Neg(e) => match e.eval(row)? {
                Value::Int(v) => Value::Int(
                    v.checked_neg()
                        .ok_or_else(|| ExecError::Eval("integer overflow in negation".into()))?,
                ),
                Value::Double(v) => Value::Double(-v),
                _ => Value::Null,
            },
            Expr::IsNull { arg, negated } => Value::Bool(arg.eval(row)?.is_null() != *negated),
            Expr::Binary {
                op, left, right, ..
            } => {
                let l = left.eval(row)?;
                // AND/OR short-circuit with SQL's three-valued logic.
                match (op, &l) {
                    (BinOp::And, Value::Bool(false)) => return Ok(Value::Bool(false)),
                    (BinOp::Or, Value::Bool(true)) => return Ok(Value::Bool(true)),
                    _ => {}
                }
                binary_op(*op, l, right.eval(row)?)?
            }
            Expr::Tumble { ts, width_ms, end } => match ts.eval(row)? {
                Value::Timestamp(t) => {
                    // Checked: a window of an extreme timestamp may not be representable.
                    let start = t.checked_sub(t.rem_euclid(*width_ms));
                    let bound = if *end {
                        start.and_then(|s| s.checked_add(*width_ms))
                    } else {
                        start
                    };
                    Value::Timestamp(bound.ok_or_else(|| {
                        ExecError::Eval("timestamp out of range in tumble window".into())
                    })?)
                }
                _ => Value::Null,
            },
            Expr::Case {
                branches,
                otherwise,
                ty,
            } => {
                for (condition, result) in branches {
                    if condition.is_true(row)? {
                        return Ok(scalar::widen(result.eval(row)?, *ty));
                    }
                }
                scalar::widen(otherwise.eval(row)?, *ty)
            }
            Expr::InList { arg, list, negated } => {
                let v = arg.eval(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row)?;
                    if x.is_null() {
                        saw_null = true;
                    } else if v.total_cmp(&x).is_eq() {
                        return Ok(Value::Bool(!negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::Like {
                arg,
                pattern,
                escape,
                fold_case,
                negated,
            } => match (arg.eval(row)?, pattern.eval(row)?) {
                (Value::Text(v), Value::Text(p)) => {
                    Value::Bool(scalar::like(&v, &p, *escape, *fold_case)? != *negated)
                }
                _ => Value::Null,
            },
            Expr::Distinct {
                left,
                right,
                negated,
            } => {
                let (l, r) = (left.eval(row)?, right.eval(row)?);
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    (false, false) => !l.total_cmp(&r).is_eq(),
                };
                Value::Bool(distinct != *negated)
            }
            Expr::Cast { arg, to, declared } => scalar::cast(arg.eval(row)?, *to, *declared)?,
            // As in PostgreSQL, COALESCE evaluates its arguments only up to the first that is
            // not NULL: a later one cannot fail the statement.
            Expr::Call {
                func: Func::Coalesce,
                args,
                ty,
            } => {
                let mut first = Value::Null;
                for a in args {
                    first = a.eval(row)?;
                    if !first.is_null() {
                        break;
                    }
                }
                scalar::eval_call(Func::Coalesce, vec![first], *ty)?
            }
            Expr::Call { func, args, ty } => {
                let values = args.iter().map(|a| a.eval(row)).collect::<Result<_, _>>()?;
                scalar::eval_call(*func, values, *ty)?
            }
        })
    }

    /// The literal of the first top-level `AND`ed term `column = literal` (either way round)
    /// that `accept(column, literal)` accepts.
    pub fn equality(&self, accept: impl Fn(usize, &Value) -> bool) -> Option<&Value> {
        let mut terms = vec![self];
        while let Some(e) = terms.pop() {
            match e {
                Expr::Binary {
                    op: BinOp::And,
                    left,
                    right,
                    ..
                } => terms.extend([&**left, &**right]),
                Expr::Binary {
                    op: BinOp::Eq,
                    left,
                    right,
                    ..
                } => match (&**left, &**right) {
                    (Expr::Column { index, .. }, Expr::Literal(v))
                    | (Expr::Literal(v), Expr::Column { index, .. })
                        if accept(*index, v) =>
                    {
                        return Some(v)
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        None
    }

    /// Whether the row satisfies this predicate (NULL and FALSE do not).
    pub fn is_true<R: Row + ?Sized>(&self, row: &R) -> Result<bool, ExecError> {
        Ok(matches!(self.eval(row)?, Value::Bool(true)))
    }
}

fn overflow(op: &str) -> ExecError {
    ExecError::Eval(format!("integer overflow in {op}"))
}

/// `l op r` on two values (`%` and `/` by zero are errors for every numeric type).
pub(crate) fn binary_op(op: BinOp, l: Value, r: Value) -> Result<Value, ExecError> {
    use Value::*;
    if let BinOp::And | BinOp::Or = op {
        return Ok(match (op, l, r) {
            (BinOp::And, _, Bool(false)) => Bool(false),
            (BinOp::And, Bool(true), Bool(true)) => Bool(true),
            (BinOp::Or, _, Bool(true)) => Bool(true),
            (BinOp::Or, Bool(false), Bool(false)) => Bool(false),
            _ => Null,
        });
    }
    if l.is_null() || r.is_null() {
        return Ok(Null);
    }
    Ok(match op {
        BinOp::Eq => Bool(l.total_cmp(&r).is_eq()),
        BinOp::NotEq => Bool(!l.total_cmp(&r).is_eq()),
        BinOp::Lt => Bool(l.total_cmp(&r).is_lt()),
        BinOp::LtEq => Bool(l.total_cmp(&r).is_le()),
        BinOp::Gt => Bool(l.total_cmp(&r).is_gt()),
        BinOp::GtEq => Bool(l.total_cmp(&r).is_ge()),
        BinOp::Concat => Text(Arc::from(format!("{l}{r}"))),
        _ => match (l, r) {
            (Int(a), Int(b)) => Int(match op {
                BinOp::Add => a.checked_add(b).ok_or_else(|| overflow("addition"))?,
                BinOp::Sub => a.checked_sub(b).ok_or_else(|| overflow("subtraction"))?,
                BinOp::Mul => a.checked_mul(b).ok_or_else(|| overflow("multiplication"))?,
                BinOp::Div if b == 0 => return Err(ExecError::Eval("division by zero".into())),
                BinOp::Div => a.checked_div(b).ok_or_else(|| overflow("division"))?,
                BinOp::Mod if b == 0 => {
                    return Err(ExecError::Eval("division by zero in %".into()))
                }
                _ => a.checked_rem(b).ok_or_else(|| overflow("%"))?,
            }),
            (Timestamp(a), Int(b)) if matches!(op, BinOp::Add | BinOp::Sub) => Timestamp(
                if op == BinOp::Add {
                    a.checked_add(b)
                } else {
                    a.checked_sub(b)
                }
                .ok_or_else(|| overflow("timestamp arithmetic"))?,
            ),
            (Timestamp(a), Timestamp(b)) => {
                Int(a.checked_sub(b).ok_or_else(|| overflow("subtraction"))?)
            }
            (a, b) => {
                let (a, b) = (as_f64(&a), as_f64(&b));
                Double(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div if b == 0.0 => {
                        return Err(ExecError::Eval("division by zero".into()))
                    }
                    BinOp::Div => a / b,
                    _ if b == 0.0 => return Err(ExecError::Eval("division by zero in %".into())),
                    _ => a % b,
                })
            }
        },
    })
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        _ => f64::NAN,
    }
}

/// Names and types of the columns an expression can refer to.
pub struct Scope<'a> {
    /// What the columns belong to, for errors (e.g. "source `events`").
    pub object: &'a str,
    pub columns: &'a [(String, DataType)],
}

impl Scope<'_> {
    pub fn find(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }

    pub fn unknown_column(&self, name: &str) -> SqlError {
        SqlError::UnknownColumn {
            column: excerpt(name),
            object: self.object.to_string(),
            available: self
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A normalised identifier: unquoted names are case-insensitive (lowercased).
pub fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The name of a one-part object name, e.g. a table in `FROM t`.
pub fn object_name(name: &ast::ObjectName) -> Result<String, SqlError> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(ident_name)
            .ok_or_else(|| {
                SqlError::Unsupported(format!("object name `{}`", excerpt(&name.to_string())))
            })
            .and_then(checked_name),
        _ => Err(SqlError::Unsupported(format!(
            "qualified name `{}`: use a plain name",
            excerpt(&name.to_string())
        ))),
    }
}

/// The longest name of a source, table, view, index or column, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// `name`, if it is not longer than [`MAX_NAME_BYTES`]: a longer one is refused with a short
/// excerpt of it, so that no later error can quote it whole.
pub fn checked_name(name: String) -> Result<String, SqlError> {
    if name.len() <= MAX_NAME_BYTES {
        return Ok(name);
    }
    Err(SqlError::Type(format!(
        "name `{}` is too long: names are at most {MAX_NAME_BYTES} bytes",
        excerpt(&name)
    )))
}

/// The names of aggregate functions, recognised by the planner rather than by [`bind`].
pub fn is_aggregate(name: &str) -> bool {
    matches!(name, "count" | "sum" | "min" | "max" | "avg")
}

/// Binds an AST expression against `scope`. Aggregates are rejected here; the planner
/// replaces them before calling this for post-aggregation expressions.
pub fn bind(expr: &ast::Expr, scope: &Scope<'_>) -> Result<Expr, SqlError> {
    bind_with(expr, scope, &mut |_, _| Ok(None))
}

/// Binds a sub-expression itself (`Some`) or lets [`bind_with`] do it (`None`).
pub type BindHook<'h> = dyn FnMut(&ast::Expr, &Scope<'_>) -> Result<Option<Expr>, SqlError> + 'h;

/// Like [`bind`], but `hook` sees every sub-expression first and may bind it itself
/// (the planner uses this to map group expressions and aggregates to post-aggregation columns).
pub fn bind_with(
    expr: &ast::Expr,
    scope: &Scope<'_>,
    hook: &mut BindHook<'_>,
) -> Result<Expr, SqlError> {
    if let Some(bound) = hook(expr, scope)? {
        return Ok(bound);
    }
    use ast::Expr as A;
    let mut rec = |e: &ast::Expr| bind_with(e, scope, hook);
    Ok(match expr {
        A::Identifier(ident) => column(scope, &ident_name(ident))?,
        A::CompoundIdentifier(parts) => {
            let last = parts.last().map(ident_name).unwrap_or_default();
            column(scope, &last)?
        }
        A::Nested(e) => rec(e)?,
        A::Value(v) => Expr::Literal(literal(&v.value)?),
        A::TypedString(ts) => {
            let text = match &ts.value.value {
                ast::Value::SingleQuotedString(s) => s.as_str(),
                other => {
                    return Err(SqlError::Type(format!(
                        "expected a quoted literal, got {other}"
                    )))
                }
            };
            match data_type(&ts.data_type)?.0 {
                DataType::Timestamp => Expr::Literal(Value::Timestamp(timestamp_literal(text)?)),
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "typed literal of type {other}"
                    )))
                }
            }
        }
        // -9223372036854775808: the magnitude alone does not fit BIGINT, the negation does.
        A::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr: inner,
        } if matches!(inner.as_ref(), A::Value(v)
                if matches!(&v.value, ast::Value::Number(n, _) if n == "9223372036854775808")) =>
        {
            Expr::Literal(Value::Int(i64::MIN))
        }
        A::UnaryOp { op, expr } => {
            let arg = rec(expr)?;
            match op {
                ast::UnaryOperator::Not => {
                    expect_bool(&arg, "NOT")?;
                    Expr::Not(Box::new(arg))
                }
                ast::UnaryOperator::Minus => {
                    if !matches!(arg.ty(), None | Some(DataType::BigInt | DataType::Double)) {
                        return Err(SqlError::Type(format!(
                            "cannot negate a {}",
                            type_name(arg.ty())
                        )));
                    }
                    match arg {
                        Expr::Literal(Value::Int(v)) if v != i64::MIN => {
                            Expr::Literal(Value::Int(-v))
                        }
                        Expr::Literal(Value::Double(v)) => Expr::Literal(Value::Double(-v)),
                        arg => Expr::Neg(Box::new(arg)),
                    }
                }
                ast::UnaryOperator::Plus => arg,
                other => return Err(SqlError::Unsupported(format!("operator {other}"))),
            }
        }
        A::IsNull(e) => Expr::IsNull {
            arg: Box::new(rec(e)?),
            negated: false,
        },
        A::IsNotNull(e) => Expr::IsNull {
            arg: Box::new(rec(e)?),
            negated: true,
        },
        A::BinaryOp { left, op, right } => {
            let op = match op {
                ast::BinaryOperator::Plus => BinOp::Add,
                ast::BinaryOperator::Minus => BinOp::Sub,
                ast::BinaryOperator::Multiply => BinOp::Mul,
                ast::BinaryOperator::Divide => BinOp::Div,
                ast::BinaryOperator::Modulo => BinOp::Mod,
                ast::BinaryOperator::Eq => BinOp::Eq,
                ast::BinaryOperator::NotEq => BinOp::NotEq,
                ast::BinaryOperator::Lt => BinOp::Lt,
                ast::BinaryOperator::LtEq => BinOp::LtEq,
                ast::BinaryOperator::Gt => BinOp::Gt,
                ast::BinaryOperator::GtEq => BinOp::GtEq,
                ast::BinaryOperator::And => BinOp::And,
                ast::BinaryOperator::Or => BinOp::Or,
                ast::BinaryOperator::StringConcat => BinOp::Concat,
                other => return Err(SqlError::Unsupported(format!("operator {other}"))),
            };
            let (l, r) = (rec(left)?, rec(right)?);
            binary_expr(op, l, r)?
        }
        A::Function(_)
        | A::Case { .. }
        | A::InList { .. }
        | A::Between { .. }
        | A::Like { .. }
        | A::ILike { .. }
        | A::IsDistinctFrom(..)
        | A::IsNotDistinctFrom(..)
        | A::Cast { .. }
        | A::Floor { .. }
        | A::Ceil { .. }
        | A::Position { .. }
        | A::Substring { .. }
        | A::Trim { .. }
        | A::Extract { .. }
        | A::Interval(_) => bind_call_or_form(expr, &mut rec)?,
        other => {
            return Err(SqlError::Unsupported(format!(
                "expression `{}`",
                excerpt(&other.to_string())
            )))
        }
    })
}

/// The function calls and the SQL forms beyond operators (`CASE`, `IN`, `LIKE`, `CAST`, …),
/// bound in a frame of their own: `bind_with` recurses once per nesting level, so its own
/// frame stays small.
#[inline(never)]
fn bind_call_or_form(
    expr: &ast::Expr,
    rec: &mut dyn FnMut(&ast::Expr) -> Result<Expr, SqlError>,
) -> Result<Expr, SqlError> {
    use ast::Expr as A;
    Ok(match expr {
        A::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            if is_aggregate(&name) {
                return Err(SqlError::Unsupported(format!(
                    "aggregate `{expr}` here: aggregates belong in the SELECT list of a grouped query"
                )));
            }
            match name.as_str() {
                "tumble" | "tumble_end" => {
                    let args = function_args(f)?;
                    let [ts, width] = args.as_slice() else {
                        return Err(SqlError::Type(format!(
                            "{name} takes two arguments: {name}(timestamp, INTERVAL 'n' MINUTE)"
                        )));
                    };
                    let ts = rec(ts)?;
                    if ts.ty() != Some(DataType::Timestamp) {
                        return Err(SqlError::Type(format!(
                            "{name} needs a TIMESTAMP as first argument, got {}",
                            type_name(ts.ty())
                        )));
                    }
                    Expr::Tumble {
                        ts: Box::new(ts),
                        width_ms: interval_ms(width)?,
                        end: name == "tumble_end",
                    }
                }
                "now" | "current_timestamp" | "localtimestamp" | "current_date" => {
                    return Err(SqlError::Unsupported(format!(
                        "{name}(): a view must give the same answer when its log is replayed, \
                         so Strata has no wall-clock function; use a timestamp column"
                    )))
                }
                "date_trunc" | "date_part" => {
                    let args = function_args(f)?;
                    let [what, ts] = args.as_slice() else {
                        return Err(SqlError::Type(format!(
                            "{name}() takes two arguments: {name}('unit', timestamp)"
                        )));
                    };
                    let A::Value(ast::ValueWithSpan {
                        value: ast::Value::SingleQuotedString(what),
                        ..
                    }) = what
                    else {
                        return Err(SqlError::Type(format!(
                            "{name}() needs its unit in quotes, e.g. {name}('hour', ts)"
                        )));
                    };
                    let func = if name == "date_trunc" {
                        Func::DateTrunc(time::unit_named(what)?)
                    } else {
                        Func::Extract(time::field_named(what)?)
                    };
                    call(func, &name, vec![rec(ts)?])?
                }
                _ => {
                    let Some(func) = scalar::func_named(&name) else {
                        return Err(SqlError::Unsupported(format!(
                            "function `{}`; the functions are: {}",
                            excerpt(&name),
                            scalar::FUNCTION_NAMES
                        )));
                    };
                    let args = function_args(f)?
                        .into_iter()
                        .map(&mut *rec)
                        .collect::<Result<Vec<_>, _>>()?;
                    call(func, &name, args)?
                }
            }
        }
        A::Extract {
            field, expr: ts, ..
        } => {
            let field = time::field_named(&field.to_string())?;
            call(Func::Extract(field), "extract", vec![rec(ts)?])?
        }
        // An interval is a number of milliseconds: `ts + INTERVAL '20' SECOND`.
        A::Interval(_) => Expr::Literal(Value::Int(time::interval_literal_ms(expr)?)),
        A::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let operand = match operand {
                Some(x) => Some(rec(x)?),
                None => None,
            };
            let mut branches = Vec::with_capacity(conditions.len());
            for when in conditions {
                let condition = rec(&when.condition)?;
                let condition = match &operand {
                    Some(x) => binary_expr(BinOp::Eq, x.clone(), condition)?,
                    None => {
                        expect_bool(&condition, "CASE WHEN")?;
                        condition
                    }
                };
                branches.push((condition, rec(&when.result)?));
            }
            let otherwise = match else_result {
                Some(e) => rec(e)?,
                None => Expr::Literal(Value::Null),
            };
            let ty = scalar::unify(
                "CASE",
                branches.iter().map(|(_, r)| r.ty()).chain([otherwise.ty()]),
            )?;
            Expr::Case {
                branches,
                otherwise: Box::new(otherwise),
                ty,
            }
        }
        A::InList {
            expr,
            list,
            negated,
        } => {
            let arg = rec(expr)?;
            let list = list
                .iter()
                .map(|e| comparable(&arg, rec(e)?))
                .collect::<Result<Vec<_>, _>>()?;
            Expr::InList {
                arg: Box::new(arg),
                list,
                negated: *negated,
            }
        }
        A::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = rec(expr)?;
            let (low, high) = (rec(low)?, rec(high)?);
            let between = |e: SqlError| match e {
                SqlError::Type(m) => SqlError::Type(format!("BETWEEN: {m}")),
                other => other,
            };
            let within = binary_expr(
                BinOp::And,
                binary_expr(BinOp::GtEq, x.clone(), low).map_err(between)?,
                binary_expr(BinOp::LtEq, x, high).map_err(between)?,
            )?;
            if *negated {
                Expr::Not(Box::new(within))
            } else {
                within
            }
        }
        A::Like {
            negated,
            any: false,
            expr: arg,
            pattern,
            escape_char,
        }
        | A::ILike {
            negated,
            any: false,
            expr: arg,
            pattern,
            escape_char,
        } => {
            let (arg, pattern) = (rec(arg)?, rec(pattern)?);
            for side in [&arg, &pattern] {
                if !matches!(side.ty(), None | Some(DataType::Text)) {
                    return Err(SqlError::Type(format!(
                        "LIKE needs VARCHAR operands, got {}",
                        type_name(side.ty())
                    )));
                }
            }
            let escape = match escape_char.as_deref().map(&mut *rec).transpose()? {
                None => None,
                Some(Expr::Literal(Value::Text(e))) if e.chars().count() == 1 => e.chars().next(),
                Some(Expr::Literal(v)) => {
                    return Err(SqlError::Type(format!(
                        "ESCAPE needs one character in quotes, got '{}'",
                        excerpt(&v.to_string())
                    )))
                }
                Some(_) => {
                    return Err(SqlError::Type(
                        "ESCAPE needs one character in quotes, not an expression".into(),
                    ))
                }
            };
            Expr::Like {
                arg: Box::new(arg),
                pattern: Box::new(pattern),
                escape,
                fold_case: matches!(expr, A::ILike { .. }),
                negated: *negated,
            }
        }
        A::IsDistinctFrom(l, r) | A::IsNotDistinctFrom(l, r) => {
            let (l, r) = (rec(l)?, rec(r)?);
            let r = comparable(&l, r)?;
            Expr::Distinct {
                left: Box::new(l),
                right: Box::new(r),
                negated: matches!(expr, A::IsNotDistinctFrom(..)),
            }
        }
        A::Cast {
            kind: ast::CastKind::Cast | ast::CastKind::DoubleColon,
            expr: arg,
            data_type: to,
            format: None,
        } => {
            let arg = rec(arg)?;
            let (to, declared) = data_type(to)?;
            scalar::check_cast(arg.ty(), to)?;
            match arg {
                // A literal is cast now: a value that does not fit fails the statement.
                Expr::Literal(v) => Expr::Literal(
                    scalar::cast(v, to, declared).map_err(|e| SqlError::Type(e.to_string()))?,
                ),
                arg => Expr::Cast {
                    arg: Box::new(arg),
                    to,
                    declared,
                },
            }
        }
        A::Floor { expr: x, field } | A::Ceil { expr: x, field } => {
            if !matches!(
                field,
                ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
            ) {
                return Err(SqlError::Unsupported(format!(
                    "`{}`: floor and ceil take one number",
                    excerpt(&expr.to_string())
                )));
            }
            let (func, name) = match expr {
                A::Floor { .. } => (Func::Floor, "floor"),
                _ => (Func::Ceil, "ceil"),
            };
            call(func, name, vec![rec(x)?])?
        }
        A::Position { expr: sub, r#in } => {
            let args = vec![rec(r#in)?, rec(sub)?];
            call(Func::Position, "position", args)?
        }
        A::Substring {
            expr: s,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![rec(s)?];
            args.push(match substring_from {
                Some(from) => rec(from)?,
                None => Expr::Literal(Value::Int(1)),
            });
            if let Some(len) = substring_for {
                args.push(rec(len)?);
            }
            call(Func::Substring, "substring", args)?
        }
        A::Trim {
            trim_where,
            trim_what,
            expr: s,
            trim_characters: None,
        } => {
            let side = match trim_where {
                None | Some(ast::TrimWhereField::Both) => TrimSide::Both,
                Some(ast::TrimWhereField::Leading) => TrimSide::Leading,
                Some(ast::TrimWhereField::Trailing) => TrimSide::Trailing,
            };
            let mut args = vec![rec(s)?];
            if let Some(what) = trim_what {
                args.push(rec(what)?);
            }
            call(Func::Trim(side), "trim", args)?
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "expression `{}`",
                excerpt(&other.to_string())
            )))
        }
    })
}

/// A function call, typed.
fn call(func: Func, name: &str, args: Vec<Expr>) -> Result<Expr, SqlError> {
    let ty = scalar::bind_call(func, name, &args)?;
    Ok(Expr::Call { func, args, ty })
}

/// `item` as the right side of `arg = item` (a text literal compared with a timestamp
/// becomes one), or the type error `=` gives.
fn comparable(arg: &Expr, item: Expr) -> Result<Expr, SqlError> {
    let item = coerce_literal(item, arg.ty())?;
    binary_expr(BinOp::Eq, arg.clone(), item.clone())?;
    Ok(item)
}

fn column(scope: &Scope<'_>, name: &str) -> Result<Expr, SqlError> {
    let index = scope.find(name).ok_or_else(|| scope.unknown_column(name))?;
    Ok(Expr::Column {
        index,
        ty: scope.columns[index].1,
    })
}

/// The plain arguments of a function call.
pub fn function_args(f: &ast::Function) -> Result<Vec<&ast::Expr>, SqlError> {
    match &f.args {
        ast::FunctionArguments::None => Ok(vec![]),
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(SqlError::Unsupported(format!(
                    "function argument `{other}`"
                ))),
            })
            .collect(),
        ast::FunctionArguments::Subquery(_) => Err(SqlError::Unsupported("subqueries".into())),
    }
}

fn type_name(ty: Option<DataType>) -> &'static str {
    ty.map_or("NULL", DataType::sql_name)
}

fn expect_bool(e: &Expr, what: &str) -> Result<(), SqlError> {
    match e.ty() {
        None | Some(DataType::Boolean) => Ok(()),
        Some(t) => Err(SqlError::Type(format!(
            "{what} needs BOOLEAN operands, got {t}"
        ))),
    }
}

/// Types a binary operation, coercing a text literal compared with a timestamp.
fn binary_expr(op: BinOp, l: Expr, r: Expr) -> Result<Expr, SqlError> {
    let (lt, rt) = (l.ty(), r.ty());
    let (l, r) = (coerce_literal(l, rt)?, coerce_literal(r, lt)?);
    let (lt, rt) = (l.ty(), r.ty());
    let mismatch = || {
        SqlError::Type(format!(
            "cannot apply {} to {} and {}",
            op.symbol(),
            type_name(lt),
            type_name(rt)
        ))
    };
    let ty = match op {
        BinOp::And | BinOp::Or => {
            expect_bool(&l, "AND/OR")?;
            expect_bool(&r, "AND/OR")?;
            Some(DataType::Boolean)
        }
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            match (lt, rt) {
                (Some(a), Some(b)) if a != b && !(a.is_numeric() && b.is_numeric()) => {
                    return Err(mismatch())
                }
                _ => Some(DataType::Boolean),
            }
        }
        BinOp::Concat => Some(DataType::Text),
        _ => match (lt, rt) {
            (None, other) | (other, None) if other.is_none_or(|t| t.is_numeric()) => other,
            (Some(DataType::BigInt), Some(DataType::BigInt)) => Some(DataType::BigInt),
            (Some(a), Some(b)) if a.is_numeric() && b.is_numeric() => Some(DataType::Double),
            (Some(DataType::Timestamp), Some(DataType::BigInt) | None)
                if matches!(op, BinOp::Add | BinOp::Sub) =>
            {
                Some(DataType::Timestamp)
            }
            (Some(DataType::Timestamp), Some(DataType::Timestamp)) if op == BinOp::Sub => {
                Some(DataType::BigInt)
            }
            _ => return Err(mismatch()),
        },
    };
    Ok(Expr::Binary {
        op,
        left: Box::new(l),
        right: Box::new(r),
        ty,
    })
}

/// A text literal next to a TIMESTAMP operand is read as a timestamp.
fn coerce_literal(e: Expr, other: Option<DataType>) -> Result<Expr, SqlError> {
    match (e, other) {
        (Expr::Literal(Value::Text(s)), Some(DataType::Timestamp)) => {
            Ok(Expr::Literal(Value::Timestamp(timestamp_literal(&s)?)))
        }
        (e, _) => Ok(e),
    }
}

pub fn timestamp_literal(text: &str) -> Result<i64, SqlError> {
    parse_timestamp(text).ok_or_else(|| {
        SqlError::Type(format!(
            "invalid timestamp '{}': expected 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD HH:MM:SS.fff' (UTC)",
            excerpt(text)
        ))
    })
}

/// A user's text as shown in an error message: on one line (control characters escaped) and
/// cut after 40 characters, so that a huge value does not make a huge message.
pub fn excerpt(text: &str) -> String {
    const SHOWN: usize = 40;
    let head: String = text.chars().take(SHOWN).collect();
    let mut out = String::with_capacity(head.len());
    for c in head.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().nth(SHOWN).is_some() {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out
}

/// A literal value.
pub fn literal(v: &ast::Value) -> Result<Value, SqlError> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                Value::Int(i)
            } else {
                let d: f64 = n
                    .parse()
                    .map_err(|_| SqlError::Type(format!("invalid number {n}")))?;
                if !n.contains(['.', 'e', 'E']) {
                    return Err(SqlError::Type(format!(
                        "integer {n} is out of BIGINT range"
                    )));
                }
                if !d.is_finite() {
                    return Err(SqlError::Type(format!("number {n} is out of DOUBLE range")));
                }
                Value::Double(d)
            }
        }
        ast::Value::SingleQuotedString(s) => Value::Text(Arc::from(s.as_str())),
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::Null => Value::Null,
        other => return Err(SqlError::Unsupported(format!("literal {other}"))),
    })
}

/// Milliseconds of a window's `INTERVAL 'n' UNIT` (positive; see [`time::interval_literal_ms`]).
pub fn interval_ms(e: &ast::Expr) -> Result<i64, SqlError> {
    match time::interval_literal_ms(e)? {
        ms if ms > 0 => Ok(ms),
        _ => Err(SqlError::Type(format!(
            "a window's interval must be positive, got `{}`",
            excerpt(&e.to_string())
        ))),
    }
}

/// Maps a SQL type to ours, with the declared maximum length of VARCHAR(n).
pub fn data_type(t: &ast::DataType) -> Result<(DataType, Declared), SqlError> {
    let text = t.to_string().to_uppercase();
    let (base, args) = match text.split_once('(') {
        Some((b, a)) => (
            b.trim().to_string(),
            Some(a.trim_end_matches(')').trim().to_string()),
        ),
        None => (text.clone(), None),
    };
    let ty = match base.as_str() {
        "BIGINT" | "INT" | "INTEGER" | "INT8" | "SMALLINT" | "INT4" | "INT2" => DataType::BigInt,
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" | "REAL" => DataType::Double,
        "VARCHAR" | "TEXT" | "STRING" | "CHARACTER VARYING" => DataType::Text,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TIMESTAMP" | "DATETIME" => DataType::Timestamp,
        _ => {
            return Err(SqlError::Unsupported(format!(
                "type {text}: use BIGINT, DOUBLE, VARCHAR/TEXT, BOOLEAN or TIMESTAMP"
            )))
        }
    };
    let declared = match (base.as_str(), args) {
        (_, Some(n)) if ty == DataType::Text => Declared::Varchar(
            n.parse::<usize>()
                .map_err(|_| SqlError::Type(format!("invalid length in {text}")))?,
        ),
        ("INT" | "INTEGER" | "INT4", _) => Declared::Int,
        ("SMALLINT" | "INT2", _) => Declared::SmallInt,
        _ => Declared::Plain,
    };
    Ok((ty, declared))
}

/// Evaluates a constant expression (no column references), e.g. an `INSERT` value.
pub fn eval_constant(e: &ast::Expr) -> Result<Value, crate::Error> {
    let scope = Scope {
        object: "a VALUES list",
        columns: &[],
    };
    let bound = bind(e, &scope).map_err(|err| match err {
        SqlError::UnknownColumn { column, .. } => SqlError::Type(format!(
            "`{column}` in a VALUES list: values must be constants, not column references"
        )),
        other => other,
    })?;
    Ok(bound.eval(&[][..])?)
}
