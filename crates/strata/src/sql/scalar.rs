//! Scalar functions, CAST and the pattern match of LIKE: how each is typed when a statement
//! is bound, and how it is evaluated on one row. The expression forms that hold them are in
//! [`super::expr`].
//!
//! NULL rules, as in PostgreSQL: a function of a NULL argument is NULL, except `COALESCE`,
//! `NULLIF`, `CONCAT` (which skips NULLs) and `GREATEST`/`LEAST` (which ignore NULLs and are
//! NULL only when every argument is).

use super::expr::Expr;
use super::time::{self, TimeField, TimeUnit};
use super::Declared;
use crate::error::{ExecError, SqlError};
use crate::types::{DataType, Value};
use std::sync::Arc;

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Coalesce,
    NullIf,
    Greatest,
    Least,
    Abs,
    Round,
    Floor,
    Ceil,
    Mod,
    Power,
    Sqrt,
    Lower,
    Upper,
    Length,
    Substring,
    Trim(TrimSide),
    Replace,
    Concat,
    /// `position(sub IN s)` and `strpos(s, sub)`; arguments are stored as `(s, sub)`.
    Position,
    StartsWith,
    /// `date_trunc('unit', ts)`: the unit is fixed when the statement is bound.
    DateTrunc(TimeUnit),
    /// `extract(field FROM ts)`, `date_part('field', ts)`.
    Extract(TimeField),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimSide {
    Both,
    Leading,
    Trailing,
}

/// The functions a statement may call, for the "not supported" message.
pub const FUNCTION_NAMES: &str = "coalesce, nullif, greatest, least, abs, round, floor, ceil, \
     mod, power, sqrt, lower, upper, length, char_length, substring, substr, trim, replace, \
     concat, position, strpos, starts_with, date_trunc, date_part, extract, tumble, tumble_end, \
     hop and hop_end (in GROUP BY), and the aggregates count, sum, min, max, avg (also with \
     DISTINCT)";

/// The function a name calls (`None`: not a scalar function of Strata's).
pub fn func_named(name: &str) -> Option<Func> {
    Some(match name {
        "coalesce" => Func::Coalesce,
        "nullif" => Func::NullIf,
        "greatest" => Func::Greatest,
        "least" => Func::Least,
        "abs" => Func::Abs,
        "round" => Func::Round,
        "floor" => Func::Floor,
        "ceil" | "ceiling" => Func::Ceil,
        "mod" => Func::Mod,
        "power" | "pow" => Func::Power,
        "sqrt" => Func::Sqrt,
        "lower" => Func::Lower,
        "upper" => Func::Upper,
        "length" | "char_length" | "character_length" => Func::Length,
        "substring" | "substr" => Func::Substring,
        "trim" | "btrim" => Func::Trim(TrimSide::Both),
        "ltrim" => Func::Trim(TrimSide::Leading),
        "rtrim" => Func::Trim(TrimSide::Trailing),
        "replace" => Func::Replace,
        "concat" => Func::Concat,
        "strpos" => Func::Position,
        "starts_with" => Func::StartsWith,
        _ => return None,
    })
}

/// The type of values of `types` taken together (`what` names them in the error): the same
/// type, or DOUBLE for a mix of BIGINT and DOUBLE; NULLs take any type.
pub fn unify(
    what: &str,
    types: impl IntoIterator<Item = Option<DataType>>,
) -> Result<Option<DataType>, SqlError> {
    let mut out: Option<DataType> = None;
    for ty in types.into_iter().flatten() {
        out = Some(match (out, ty) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(DataType::BigInt), DataType::Double)
            | (Some(DataType::Double), DataType::BigInt) => DataType::Double,
            (Some(a), b) => {
                return Err(SqlError::Type(format!(
                    "{what} mixes {} and {}",
                    a.sql_name(),
                    b.sql_name()
                )))
            }
        });
    }
    Ok(out)
}

/// A value of a unified type: BIGINT widened to DOUBLE where the type is DOUBLE.
pub fn widen(v: Value, ty: Option<DataType>) -> Value {
    match (v, ty) {
        (Value::Int(i), Some(DataType::Double)) => Value::Double(i as f64),
        (v, _) => v,
    }
}

fn expect(name: &str, arg: &Expr, want: &[DataType]) -> Result<(), SqlError> {
    match arg.ty() {
        None => Ok(()),
        Some(t) if want.contains(&t) => Ok(()),
        Some(t) => Err(SqlError::Type(format!(
            "{name}() needs {} arguments, got {}",
            want.iter()
                .map(|t| t.sql_name())
                .collect::<Vec<_>>()
                .join(" or "),
            t.sql_name()
        ))),
    }
}

/// Types a call of `func` (`name` as written) on bound `args`: its result type.
pub fn bind_call(func: Func, name: &str, args: &[Expr]) -> Result<Option<DataType>, SqlError> {
    use DataType::*;
    let arity = |ok: bool, usage: &str| {
        if ok {
            Ok(())
        } else {
            Err(SqlError::Type(format!("{name}() takes {usage}")))
        }
    };
    let numeric = [BigInt, Double];
    Ok(match func {
        Func::Coalesce | Func::Greatest | Func::Least => {
            arity(!args.is_empty(), "one or more arguments")?;
            unify(&format!("{name}()"), args.iter().map(Expr::ty))?
        }
        Func::NullIf => {
            arity(args.len() == 2, "two arguments")?;
            unify(&format!("{name}()"), args.iter().map(Expr::ty))?;
            args[0].ty()
        }
        Func::Abs | Func::Floor | Func::Ceil => {
            arity(args.len() == 1, "one argument")?;
            expect(name, &args[0], &numeric)?;
            args[0].ty()
        }
        Func::Round => {
            arity(
                (1..=2).contains(&args.len()),
                "one or two arguments: round(x [, digits])",
            )?;
            expect(name, &args[0], &numeric)?;
            if let Some(d) = args.get(1) {
                expect(name, d, &[BigInt])?;
            }
            args[0].ty()
        }
        Func::Mod => {
            arity(args.len() == 2, "two arguments")?;
            args.iter().try_for_each(|a| expect(name, a, &numeric))?;
            unify(&format!("{name}()"), args.iter().map(Expr::ty))?
        }
        Func::Power => {
            arity(args.len() == 2, "two arguments")?;
            args.iter().try_for_each(|a| expect(name, a, &numeric))?;
            Some(Double)
        }
        Func::Sqrt => {
            arity(args.len() == 1, "one argument")?;
            expect(name, &args[0], &numeric)?;
            Some(Double)
        }
        Func::Lower | Func::Upper => {
            arity(args.len() == 1, "one argument")?;
            expect(name, &args[0], &[Text])?;
            Some(Text)
        }
        Func::Length => {
            arity(args.len() == 1, "one argument")?;
            expect(name, &args[0], &[Text])?;
            Some(BigInt)
        }
        Func::Substring => {
            arity(
                (2..=3).contains(&args.len()),
                "two or three arguments: substring(s, start [, length])",
            )?;
            expect(name, &args[0], &[Text])?;
            args[1..]
                .iter()
                .try_for_each(|a| expect(name, a, &[BigInt]))?;
            Some(Text)
        }
        Func::Trim(_) => {
            arity(
                (1..=2).contains(&args.len()),
                "one or two arguments: trim(s [, characters])",
            )?;
            args.iter().try_for_each(|a| expect(name, a, &[Text]))?;
            Some(Text)
        }
        Func::Replace => {
            arity(args.len() == 3, "three arguments: replace(s, from, to)")?;
            args.iter().try_for_each(|a| expect(name, a, &[Text]))?;
            Some(Text)
        }
        Func::Concat => Some(Text),
        Func::Position => {
            arity(args.len() == 2, "two arguments")?;
            args.iter().try_for_each(|a| expect(name, a, &[Text]))?;
            Some(BigInt)
        }
        Func::StartsWith => {
            arity(args.len() == 2, "two arguments: starts_with(s, prefix)")?;
            args.iter().try_for_each(|a| expect(name, a, &[Text]))?;
            Some(Boolean)
        }
        Func::DateTrunc(_) => {
            arity(
                args.len() == 1,
                "two arguments: date_trunc('unit', timestamp)",
            )?;
            expect(name, &args[0], &[Timestamp])?;
            Some(Timestamp)
        }
        Func::Extract(field) => {
            arity(args.len() == 1, "a field and a timestamp")?;
            expect(name, &args[0], &[Timestamp])?;
            Some(if field.is_fractional() {
                Double
            } else {
                BigInt
            })
        }
    })
}

fn eval_error(message: impl Into<String>) -> ExecError {
    ExecError::Eval(message.into())
}

fn text(v: &Value) -> &str {
    match v {
        Value::Text(t) => t,
        _ => "",
    }
}

/// Evaluates `func` on its evaluated arguments; `ty` is the type bound for the call.
pub fn eval_call(func: Func, args: Vec<Value>, ty: Option<DataType>) -> Result<Value, ExecError> {
    use Value::*;
    match func {
        Func::Coalesce => {
            return Ok(widen(
                args.into_iter().find(|v| !v.is_null()).unwrap_or(Null),
                ty,
            ));
        }
        Func::NullIf => {
            let mut args = args.into_iter();
            let (a, b) = (args.next().unwrap_or(Null), args.next().unwrap_or(Null));
            return Ok(if !a.is_null() && !b.is_null() && a.total_cmp(&b).is_eq() {
                Null
            } else {
                a
            });
        }
        Func::Greatest | Func::Least => {
            let pick = args.into_iter().filter(|v| !v.is_null()).reduce(|a, b| {
                let later = b.total_cmp(&a);
                let take_b = if func == Func::Greatest {
                    later.is_gt()
                } else {
                    later.is_lt()
                };
                if take_b {
                    b
                } else {
                    a
                }
            });
            return Ok(widen(pick.unwrap_or(Null), ty));
        }
        Func::Concat => {
            let mut out = String::new();
            for v in &args {
                use std::fmt::Write;
                let _ = write!(out, "{v}");
            }
            return Ok(Text(Arc::from(out)));
        }
        _ => {}
    }
    if args.iter().any(Value::is_null) {
        return Ok(Null);
    }
    Ok(match (func, args.as_slice()) {
        (Func::Abs, [Int(i)]) => Int(i
            .checked_abs()
            .ok_or_else(|| eval_error("integer overflow in abs()"))?),
        (Func::Abs, [Double(d)]) => Double(d.abs()),
        (Func::Floor, [Double(d)]) => Double(d.floor()),
        (Func::Ceil, [Double(d)]) => Double(d.ceil()),
        (Func::Floor | Func::Ceil, [Int(i)]) => Int(*i),
        (Func::Round, [v]) => round(v, 0)?,
        (Func::Round, [v, Int(digits)]) => round(v, *digits)?,
        (Func::Mod, [a, b]) => {
            super::expr::binary_op(super::expr::BinOp::Mod, a.clone(), b.clone())?
        }
        (Func::Power, [a, b]) => {
            let r = as_f64(a).powf(as_f64(b));
            if !r.is_finite() {
                return Err(eval_error(format!(
                    "power({a}, {b}) is out of DOUBLE range or undefined"
                )));
            }
            Double(r)
        }
        (Func::Sqrt, [v]) => {
            let x = as_f64(v);
            if x < 0.0 {
                return Err(eval_error(format!("sqrt() of a negative number ({v})")));
            }
            Double(x.sqrt())
        }
        (Func::Lower, [s]) => Text(Arc::from(text(s).to_lowercase())),
        (Func::Upper, [s]) => Text(Arc::from(text(s).to_uppercase())),
        (Func::Length, [s]) => Int(text(s).chars().count() as i64),
        (Func::Substring, [s, Int(start), rest @ ..]) => {
            let len = match rest {
                [Int(n)] if *n < 0 => return Err(eval_error("negative substring length")),
                [Int(n)] => Some(*n),
                _ => None,
            };
            // 1-based; characters before position 1 count against the length.
            let end = len.map(|n| start.saturating_add(n));
            let first = (*start).max(1);
            let taken: String = text(s)
                .chars()
                .enumerate()
                .map(|(i, c)| (i as i64 + 1, c))
                .filter(|(pos, _)| *pos >= first && end.is_none_or(|e| *pos < e))
                .map(|(_, c)| c)
                .collect();
            Text(Arc::from(taken))
        }
        (Func::Trim(side), [s, rest @ ..]) => {
            let set: Vec<char> = match rest {
                [chars] => text(chars).chars().collect(),
                _ => vec![' '],
            };
            let s = text(s);
            let strip = |c: char| set.contains(&c);
            Text(Arc::from(match side {
                TrimSide::Both => s.trim_matches(strip),
                TrimSide::Leading => s.trim_start_matches(strip),
                TrimSide::Trailing => s.trim_end_matches(strip),
            }))
        }
        // An empty `from` replaces nothing, as in PostgreSQL.
        (Func::Replace, [s, from, _]) if text(from).is_empty() => s.clone(),
        (Func::Replace, [s, from, to]) => Text(Arc::from(text(s).replace(text(from), text(to)))),
        (Func::Position, [s, sub]) => Int(match text(s).find(text(sub)) {
            Some(byte) => text(s)[..byte].chars().count() as i64 + 1,
            None => 0,
        }),
        (Func::StartsWith, [s, prefix]) => Bool(text(s).starts_with(text(prefix))),
        (Func::DateTrunc(unit), [Timestamp(ms)]) => Timestamp(time::trunc(*ms, unit)?),
        (Func::Extract(field), [Timestamp(ms)]) => time::extract(*ms, field),
        (func, args) => {
            return Err(eval_error(format!("{func:?} cannot take ({args:?})")));
        }
    })
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        _ => f64::NAN,
    }
}

/// `round(v, digits)`: half away from zero. A BIGINT stays a BIGINT (negative `digits`
/// round to tens, hundreds, …).
fn round(v: &Value, digits: i64) -> Result<Value, ExecError> {
    Ok(match v {
        Value::Double(d) => {
            let scale = 10f64.powi(digits.clamp(-300, 300) as i32);
            let r = (d * scale).round() / scale;
            Value::Double(if r.is_finite() { r } else { *d })
        }
        Value::Int(i) if digits >= 0 => Value::Int(*i),
        Value::Int(i) => {
            let unit = 10i128
                .checked_pow((-digits).min(38) as u32)
                .unwrap_or(i128::MAX);
            let i = *i as i128;
            let half = unit / 2;
            let r = if i >= 0 {
                (i + half) / unit * unit
            } else {
                (i - half) / unit * unit
            };
            Value::Int(i64::try_from(r).map_err(|_| eval_error("integer overflow in round()"))?)
        }
        other => other.clone(),
    })
}

/// Whether `CAST` from `from` to `to` is defined.
pub fn check_cast(from: Option<DataType>, to: DataType) -> Result<(), SqlError> {
    use DataType::*;
    let Some(from) = from else { return Ok(()) };
    let ok = from == to
        || matches!(
            (from, to),
            (BigInt | Double, BigInt | Double)
                | (_, Text)
                | (Text, _)
                | (BigInt, Boolean)
                | (Boolean, BigInt)
        );
    if ok {
        Ok(())
    } else {
        Err(SqlError::Type(format!(
            "cannot cast {} to {}",
            from.sql_name(),
            to.sql_name()
        )))
    }
}

/// `CAST(v AS to)`; a value that does not fit is an error naming it.
pub fn cast(v: Value, to: DataType, declared: Declared) -> Result<Value, ExecError> {
    let v = cast_to(v, to)?;
    declared.check_range(&v).map_err(eval_error)?;
    Ok(v)
}

fn cast_to(v: Value, to: DataType) -> Result<Value, ExecError> {
    use Value::*;
    let invalid = |v: &Value| {
        eval_error(format!(
            "cannot cast '{}' to {}",
            super::expr::excerpt(&v.to_string()),
            to.sql_name()
        ))
    };
    Ok(match (v, to) {
        (Null, _) => Null,
        (v @ Int(_), DataType::BigInt)
        | (v @ Double(_), DataType::Double)
        | (v @ Text(_), DataType::Text)
        | (v @ Bool(_), DataType::Boolean)
        | (v @ Timestamp(_), DataType::Timestamp) => v,
        (Int(i), DataType::Double) => Double(i as f64),
        (Double(d), DataType::BigInt) => {
            let r = d.round();
            // i64::MAX as f64 rounds up to 2^63, which does not fit.
            if r.is_finite() && r >= i64::MIN as f64 && r < i64::MAX as f64 {
                Int(r as i64)
            } else {
                return Err(eval_error(format!("{d:?} is out of BIGINT range")));
            }
        }
        (Int(i), DataType::Boolean) => Bool(i != 0),
        (Bool(b), DataType::BigInt) => Int(b as i64),
        (v, DataType::Text) => Text(Arc::from(v.to_string())),
        (Text(s), DataType::BigInt) => {
            Int(s.trim().parse().map_err(|_| invalid(&Text(s.clone())))?)
        }
        (Text(s), DataType::Double) => match s.trim().parse::<f64>() {
            Ok(d) if d.is_finite() => Double(d),
            _ => return Err(invalid(&Text(s))),
        },
        (Text(s), DataType::Boolean) => match s.trim().to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Bool(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Bool(false),
            _ => return Err(invalid(&Text(s))),
        },
        (Text(s), DataType::Timestamp) => Timestamp(
            super::expr::timestamp_literal(s.trim()).map_err(|_| invalid(&Text(s.clone())))?,
        ),
        (v, _) => return Err(invalid(&v)),
    })
}

/// A compiled `LIKE` pattern: `%` any run of characters, `_` any one, `escape` (if any)
/// makes the next character literal.
pub fn like(
    value: &str,
    pattern: &str,
    escape: Option<char>,
    fold_case: bool,
) -> Result<bool, ExecError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Char(char),
    }
    let fold = |s: &str| {
        if fold_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let (value, pattern) = (fold(value), fold(pattern));
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            c if Some(c) == escape => Tok::Char(chars.next().ok_or_else(|| {
                eval_error(format!(
                    "LIKE pattern '{}' ends with its escape character",
                    super::expr::excerpt(&pattern)
                ))
            })?),
            '%' => Tok::Any,
            '_' => Tok::One,
            c => Tok::Char(c),
        });
    }
    let text: Vec<char> = value.chars().collect();
    // Greedy match with backtracking to the last `%` (linear in practice, never exponential).
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                t += 1;
                p += 1;
            }
            Some(Tok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return Ok(false),
            },
        }
    }
    Ok(toks[p..].iter().all(|t| *t == Tok::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_as_sql_says() {
        let m = |v: &str, p: &str| like(v, p, None, false).unwrap();
        assert!(m("hello", "h%"));
        assert!(m("hello", "%llo"));
        assert!(m("hello", "h_l%o"));
        assert!(m("", "%"));
        assert!(!m("", "_"));
        assert!(!m("hello", "h%x"));
        assert!(m("a%b", "a%b"));
        assert!(m("aaa", "%a%a%a%"));
        assert!(!m("aa", "%a%a%a%"));
        assert!(m("ÄÖ", "__"));
        assert!(like("10%", "10!%", Some('!'), false).unwrap());
        assert!(!like("105", "10!%", Some('!'), false).unwrap());
        assert!(like("Hello", "hel%", None, true).unwrap());
        assert!(like("x", "x!", Some('!'), false).is_err());
    }

    #[test]
    fn casts_refuse_what_does_not_fit() {
        assert_eq!(
            cast(Value::Text("42".into()), DataType::BigInt, Declared::Plain).unwrap(),
            Value::Int(42)
        );
        assert!(cast(Value::Text("abc".into()), DataType::BigInt, Declared::Plain).is_err());
        assert!(cast(Value::Double(1e19), DataType::BigInt, Declared::Plain).is_err());
        assert_eq!(
            cast(Value::Double(2.5), DataType::BigInt, Declared::Plain).unwrap(),
            Value::Int(3)
        );
        assert_eq!(
            cast(Value::Double(-2.5), DataType::BigInt, Declared::Plain).unwrap(),
            Value::Int(-3)
        );
        assert!(check_cast(Some(DataType::Timestamp), DataType::BigInt).is_err());
        assert!(cast(Value::Int(1 << 31), DataType::BigInt, Declared::Int).is_err());
        assert!(cast(Value::Int(-(1 << 31)), DataType::BigInt, Declared::Int).is_ok());
        assert!(cast(Value::Int(32768), DataType::BigInt, Declared::SmallInt).is_err());
    }
}
