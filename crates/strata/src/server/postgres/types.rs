//! Strata's values as PostgreSQL's: the type of each column, a value's text and binary
//! forms, and parameters decoded from the forms a client sends them in.
//!
//! | Strata | PostgreSQL |
//! |---|---|
//! | BIGINT | `int8` (`int4` for a column declared INT, `int2` for SMALLINT) |
//! | DOUBLE | `float8` |
//! | VARCHAR, TEXT | `text` |
//! | BOOLEAN | `bool` |
//! | TIMESTAMP (milliseconds, UTC) | `timestamp` (without time zone) |

use crate::types::{format_timestamp, parse_timestamp, DataType, Value};
use bytes::{BufMut, BytesMut};
use pgwire::api::results::FieldFormat;
use pgwire::api::Type;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{to_sql_checked, IsNull, ToSql};
use std::error::Error;

type BoxError = Box<dyn Error + Sync + Send>;

/// Milliseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// The PostgreSQL type of a column stored as `ty`.
pub fn pg_type(ty: DataType) -> Type {
    match ty {
        DataType::BigInt => Type::INT8,
        DataType::Double => Type::FLOAT8,
        DataType::Text => Type::TEXT,
        DataType::Boolean => Type::BOOL,
        DataType::Timestamp => Type::TIMESTAMP,
    }
}

/// The PostgreSQL type of a type as `DESCRIBE` names it (`BIGINT`, `INT`, `VARCHAR(20)`, …).
pub fn pg_type_named(declared: &str) -> Option<Type> {
    let base = declared.split('(').next().unwrap_or(declared).trim();
    Some(match base.to_ascii_uppercase().as_str() {
        "BIGINT" => Type::INT8,
        "INT" => Type::INT4,
        "SMALLINT" => Type::INT2,
        "DOUBLE" => Type::FLOAT8,
        "VARCHAR" | "TEXT" => Type::TEXT,
        "BOOLEAN" => Type::BOOL,
        "TIMESTAMP" => Type::TIMESTAMP,
        _ => return None,
    })
}

/// One value of a result row, encoded as the type its column is described with.
#[derive(Debug)]
pub struct Cell<'a>(pub &'a Value);

fn out_of_range(value: i64, ty: &Type) -> BoxError {
    format!("{value} is out of range for {}", ty.name()).into()
}

impl ToSql for Cell<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self.0, ty) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT2) => {
                out.put_i16(i16::try_from(*v).map_err(|_| out_of_range(*v, ty))?)
            }
            (Value::Int(v), &Type::INT4) => {
                out.put_i32(i32::try_from(*v).map_err(|_| out_of_range(*v, ty))?)
            }
            (Value::Int(v), _) => out.put_i64(*v),
            (Value::Double(v), _) => out.put_f64(*v),
            (Value::Text(v), _) => out.put_slice(v.as_bytes()),
            (Value::Bool(v), _) => out.put_u8(u8::from(*v)),
            (Value::Timestamp(ms), _) => out.put_i64(
                ms.checked_sub(PG_EPOCH_MS)
                    .and_then(|ms| ms.checked_mul(1000))
                    .ok_or("timestamp out of range")?,
            ),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl ToSqlText for Cell<'_> {
    fn to_sql_text(
        &self,
        ty: &Type,
        out: &mut BytesMut,
        options: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Int(v) => out.put_slice(v.to_string().as_bytes()),
            Value::Double(v) => return v.to_sql_text(ty, out, options),
            Value::Text(v) => out.put_slice(v.as_bytes()),
            Value::Bool(v) => out.put_u8(if *v { b't' } else { b'f' }),
            Value::Timestamp(ms) => out.put_slice(format_timestamp(*ms).as_bytes()),
        }
        Ok(IsNull::No)
    }
}

/// A parameter's value from the bytes a client bound to it, in `format`, as `ty`.
pub fn decode_parameter(
    bytes: Option<&[u8]>,
    ty: &Type,
    format: FieldFormat,
) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    match format {
        FieldFormat::Text => {
            let text = std::str::from_utf8(bytes).map_err(|_| "the value is not UTF-8")?;
            decode_text(text, ty)
        }
        FieldFormat::Binary => decode_binary(bytes, ty),
    }
}

fn decode_text(text: &str, ty: &Type) -> Result<Value, String> {
    let invalid = || format!("invalid input syntax for type {}: \"{text}\"", ty.name());
    Ok(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            Value::Int(text.trim().parse().map_err(|_| invalid())?)
        }
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            Value::Double(text.trim().parse().map_err(|_| invalid())?)
        }
        Type::BOOL => Value::Bool(match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "y" | "on" => true,
            "f" | "false" | "0" | "no" | "n" | "off" => false,
            _ => return Err(invalid()),
        }),
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE => {
            // A client's `+00` (UTC) suffix is accepted; Strata's timestamps are UTC.
            let t = text.trim();
            let t = t.strip_suffix("+00").unwrap_or(t);
            Value::Timestamp(parse_timestamp(t).ok_or_else(invalid)?)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::Text(text.into())
        }
        _ => return Err(unsupported_type(ty)),
    })
}

fn decode_binary(bytes: &[u8], ty: &Type) -> Result<Value, String> {
    let wrong = || {
        format!(
            "a binary {} parameter of {} bytes is malformed",
            ty.name(),
            bytes.len()
        )
    };
    let int = |width: usize| -> Result<i64, String> {
        match width {
            2 => <[u8; 2]>::try_from(bytes).map(|b| i16::from_be_bytes(b) as i64),
            4 => <[u8; 4]>::try_from(bytes).map(|b| i32::from_be_bytes(b) as i64),
            _ => <[u8; 8]>::try_from(bytes).map(i64::from_be_bytes),
        }
        .map_err(|_| wrong())
    };
    Ok(match *ty {
        Type::INT2 => Value::Int(int(2)?),
        Type::INT4 => Value::Int(int(4)?),
        Type::INT8 => Value::Int(int(8)?),
        Type::FLOAT4 => Value::Double(
            <[u8; 4]>::try_from(bytes)
                .map(f32::from_be_bytes)
                .map_err(|_| wrong())? as f64,
        ),
        Type::FLOAT8 => Value::Double(
            <[u8; 8]>::try_from(bytes)
                .map(f64::from_be_bytes)
                .map_err(|_| wrong())?,
        ),
        Type::BOOL => match bytes {
            [b] => Value::Bool(*b != 0),
            _ => return Err(wrong()),
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = int(8)?;
            Value::Timestamp(micros.div_euclid(1000).saturating_add(PG_EPOCH_MS))
        }
        Type::DATE => Value::Timestamp(int(4)?.saturating_mul(86_400_000) + PG_EPOCH_MS),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::Text(std::str::from_utf8(bytes).map_err(|_| wrong())?.into())
        }
        _ => return Err(unsupported_type(ty)),
    })
}

fn unsupported_type(ty: &Type) -> String {
    format!(
        "parameters of type {} are not supported; send int2/int4/int8, float4/float8, text, \
         bool or timestamp",
        ty.name()
    )
}

/// `value` as a SQL literal of Strata's syntax, to stand where a `$n` parameter stood.
pub fn literal(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Null => "NULL".into(),
        // The most negative BIGINT has no positive literal to negate.
        Value::Int(i64::MIN) => "(-9223372036854775807 - 1)".into(),
        Value::Int(v) => v.to_string(),
        Value::Double(v) if v.is_finite() => format!("{v:?}"),
        Value::Double(v) => return Err(format!("{v} is not a number Strata can store")),
        Value::Text(v) => format!("'{}'", v.replace('\'', "''")),
        Value::Bool(v) => if *v { "TRUE" } else { "FALSE" }.into(),
        Value::Timestamp(ms) => format!("TIMESTAMP '{}'", format_timestamp(*ms)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_decode_from_both_formats() {
        let text = |s: &str, ty: &Type| decode_parameter(Some(s.as_bytes()), ty, FieldFormat::Text);
        let binary = |b: &[u8], ty: &Type| decode_parameter(Some(b), ty, FieldFormat::Binary);
        assert_eq!(text("42", &Type::INT4), Ok(Value::Int(42)));
        assert_eq!(
            binary(&(-7i16).to_be_bytes(), &Type::INT2),
            Ok(Value::Int(-7))
        );
        assert_eq!(
            binary(&(-7i32).to_be_bytes(), &Type::INT4),
            Ok(Value::Int(-7))
        );
        assert_eq!(
            binary(&1.5f64.to_be_bytes(), &Type::FLOAT8),
            Ok(Value::Double(1.5))
        );
        assert_eq!(text("on", &Type::BOOL), Ok(Value::Bool(true)));
        assert_eq!(
            text("2024-01-02 03:04:05.5", &Type::TIMESTAMP),
            Ok(Value::Timestamp(
                parse_timestamp("2024-01-02 03:04:05.5").unwrap()
            ))
        );
        let micros = (parse_timestamp("2024-01-02 03:04:05.5").unwrap() - PG_EPOCH_MS) * 1000;
        assert_eq!(
            binary(&micros.to_be_bytes(), &Type::TIMESTAMP),
            Ok(Value::Timestamp(
                parse_timestamp("2024-01-02 03:04:05.5").unwrap()
            ))
        );
        assert_eq!(
            decode_parameter(None, &Type::INT8, FieldFormat::Binary),
            Ok(Value::Null)
        );
        assert!(text("x", &Type::INT8)
            .unwrap_err()
            .contains("invalid input syntax"));
        assert!(binary(&[1, 2, 3], &Type::INT8)
            .unwrap_err()
            .contains("malformed"));
        assert!(text("{}", &Type::JSON)
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn literals_read_back_as_the_same_values() {
        assert_eq!(literal(&Value::Text("it's".into())).unwrap(), "'it''s'");
        assert_eq!(
            literal(&Value::Int(i64::MIN)).unwrap(),
            "(-9223372036854775807 - 1)"
        );
        assert_eq!(literal(&Value::Double(1e300)).unwrap(), "1e300");
        assert!(literal(&Value::Double(f64::NAN)).is_err());
        assert_eq!(
            literal(&Value::Timestamp(1500)).unwrap(),
            "TIMESTAMP '1970-01-01 00:00:01.500'"
        );
    }
}
