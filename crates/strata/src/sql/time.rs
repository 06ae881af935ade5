//! Time functions: `date_trunc`, `extract` / `date_part`, and `INTERVAL` literals. A
//! timestamp is milliseconds since the Unix epoch, UTC; an interval is a number of
//! milliseconds (a BIGINT), so `ts + INTERVAL '20' SECOND` is a timestamp and `ts - ts` a
//! BIGINT of milliseconds. Months and years have no fixed length and are not intervals (use
//! days), but `date_trunc` and `extract` know them.

use crate::error::{ExecError, SqlError};
use crate::types::{civil_from_days, days_from_civil, MS_PER_DAY};
use sqlparser::ast;

/// What `date_trunc` rounds down to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    /// Monday, as ISO 8601 weeks start.
    Week,
    Month,
    Quarter,
    Year,
}

/// What `extract` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeField {
    Year,
    Quarter,
    Month,
    /// ISO 8601 week of the year (1–53).
    Week,
    Day,
    /// Day of the week, 0 = Sunday.
    Dow,
    /// Day of the year, from 1.
    Doy,
    Hour,
    Minute,
    /// Seconds with their fraction (DOUBLE).
    Second,
    /// Seconds × 1000 plus milliseconds (within the minute).
    Millisecond,
    /// Seconds since 1970-01-01 (DOUBLE).
    Epoch,
}

impl TimeField {
    /// Whether the field is a DOUBLE (else a BIGINT).
    pub fn is_fractional(self) -> bool {
        matches!(self, TimeField::Second | TimeField::Epoch)
    }
}

pub fn unit_named(name: &str) -> Result<TimeUnit, SqlError> {
    Ok(match name.trim().to_lowercase().trim_end_matches('s') {
        "millisecond" => TimeUnit::Millisecond,
        "second" => TimeUnit::Second,
        "minute" => TimeUnit::Minute,
        "hour" => TimeUnit::Hour,
        "day" => TimeUnit::Day,
        "week" => TimeUnit::Week,
        "month" => TimeUnit::Month,
        "quarter" => TimeUnit::Quarter,
        "year" => TimeUnit::Year,
        _ => {
            return Err(SqlError::Type(format!(
                "date_trunc unit '{}': use millisecond, second, minute, hour, day, week, \
                 month, quarter or year",
                super::expr::excerpt(name)
            )))
        }
    })
}

pub fn field_named(name: &str) -> Result<TimeField, SqlError> {
    Ok(match name.trim().to_lowercase().as_str() {
        "year" | "years" => TimeField::Year,
        "quarter" => TimeField::Quarter,
        "month" | "months" => TimeField::Month,
        "week" | "weeks" => TimeField::Week,
        "day" | "days" => TimeField::Day,
        "dow" | "dayofweek" => TimeField::Dow,
        "doy" | "dayofyear" => TimeField::Doy,
        "hour" | "hours" => TimeField::Hour,
        "minute" | "minutes" => TimeField::Minute,
        "second" | "seconds" => TimeField::Second,
        "millisecond" | "milliseconds" => TimeField::Millisecond,
        "epoch" => TimeField::Epoch,
        _ => {
            return Err(SqlError::Type(format!(
                "extract field '{}': use year, quarter, month, week, day, dow, doy, hour, \
                 minute, second, millisecond or epoch",
                super::expr::excerpt(name)
            )))
        }
    })
}

fn out_of_range() -> ExecError {
    ExecError::Eval("timestamp out of range in date_trunc".into())
}

/// The start of the `unit` that contains `ms`.
pub fn trunc(ms: i64, unit: TimeUnit) -> Result<i64, ExecError> {
    let fixed = |width: i64| {
        ms.checked_sub(ms.rem_euclid(width))
            .ok_or_else(out_of_range)
    };
    let days = ms.div_euclid(MS_PER_DAY);
    let (y, m, _) = civil_from_days(days);
    let day_start = |d: i64| d.checked_mul(MS_PER_DAY).ok_or_else(out_of_range);
    match unit {
        TimeUnit::Millisecond => Ok(ms),
        TimeUnit::Second => fixed(1_000),
        TimeUnit::Minute => fixed(60_000),
        TimeUnit::Hour => fixed(3_600_000),
        TimeUnit::Day => fixed(MS_PER_DAY),
        // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
        TimeUnit::Week => day_start(days - (days + 3).rem_euclid(7)),
        TimeUnit::Month => day_start(days_from_civil(y, m, 1)),
        TimeUnit::Quarter => day_start(days_from_civil(y, (m - 1) / 3 * 3 + 1, 1)),
        TimeUnit::Year => day_start(days_from_civil(y, 1, 1)),
    }
}

/// `extract(field FROM ms)`: a BIGINT, or a DOUBLE for the fractional fields.
pub fn extract(ms: i64, field: TimeField) -> crate::types::Value {
    use crate::types::Value::{Double, Int};
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    match field {
        TimeField::Year => Int(y),
        TimeField::Quarter => Int((m - 1) / 3 + 1),
        TimeField::Month => Int(m),
        TimeField::Week => {
            // The ISO week is the one of its Thursday; week 1 holds the year's first Thursday.
            let thursday = days - (days + 3).rem_euclid(7) + 3;
            let (ty, _, _) = civil_from_days(thursday);
            Int((thursday - days_from_civil(ty, 1, 1)) / 7 + 1)
        }
        TimeField::Day => Int(d),
        TimeField::Dow => Int((days + 4).rem_euclid(7)),
        TimeField::Doy => Int(days - days_from_civil(y, 1, 1) + 1),
        TimeField::Hour => Int(in_day / 3_600_000),
        TimeField::Minute => Int(in_day / 60_000 % 60),
        TimeField::Second => Double((in_day % 60_000) as f64 / 1000.0),
        TimeField::Millisecond => Int(in_day % 60_000),
        TimeField::Epoch => Double(ms as f64 / 1000.0),
    }
}

/// An `INTERVAL 'n' UNIT` (or `INTERVAL 'n unit'`) literal in milliseconds, of any sign.
pub fn interval_literal_ms(e: &ast::Expr) -> Result<i64, SqlError> {
    let bad = || {
        SqlError::Type(format!(
            "expected an interval like INTERVAL '5' MINUTE (MILLISECOND, SECOND, MINUTE, HOUR, \
             DAY or WEEK; months and years have no fixed length), got `{}`",
            super::expr::excerpt(&e.to_string())
        ))
    };
    let ast::Expr::Interval(iv) = e else {
        return Err(bad());
    };
    let text = match iv.value.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let (amount, unit) = match (&iv.leading_field, text.trim().split_once(' ')) {
        (Some(field), None) => (text.trim().to_string(), field.to_string()),
        (None, Some((n, u))) => (n.to_string(), u.trim().to_string()),
        _ => return Err(bad()),
    };
    let n: i64 = amount.parse().map_err(|_| bad())?;
    let unit_ms = match unit.to_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => MS_PER_DAY,
        "WEEK" => 7 * MS_PER_DAY,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).ok_or_else(|| {
        SqlError::Type(format!(
            "interval `{}` does not fit in BIGINT milliseconds",
            super::expr::excerpt(&e.to_string())
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{parse_timestamp, Value};

    fn ts(text: &str) -> i64 {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn truncation_and_fields_follow_the_calendar() {
        let t = ts("2026-02-18 13:47:05.250"); // a Wednesday
        let f = crate::types::format_timestamp;
        assert_eq!(
            f(trunc(t, TimeUnit::Second).unwrap()),
            "2026-02-18 13:47:05"
        );
        assert_eq!(f(trunc(t, TimeUnit::Hour).unwrap()), "2026-02-18 13:00:00");
        assert_eq!(f(trunc(t, TimeUnit::Week).unwrap()), "2026-02-16 00:00:00");
        assert_eq!(f(trunc(t, TimeUnit::Month).unwrap()), "2026-02-01 00:00:00");
        assert_eq!(
            f(trunc(t, TimeUnit::Quarter).unwrap()),
            "2026-01-01 00:00:00"
        );
        assert_eq!(
            f(trunc(ts("1969-12-31 23:59:59"), TimeUnit::Day).unwrap()),
            "1969-12-31 00:00:00"
        );
        assert_eq!(extract(t, TimeField::Dow), Value::Int(3));
        assert_eq!(extract(t, TimeField::Doy), Value::Int(49));
        assert_eq!(extract(t, TimeField::Second), Value::Double(5.25));
        assert_eq!(extract(t, TimeField::Millisecond), Value::Int(5250));
        // ISO weeks: 2027-01-01 (a Friday) is in week 53 of 2026; 2026-12-31 too.
        assert_eq!(extract(ts("2027-01-01"), TimeField::Week), Value::Int(53));
        assert_eq!(extract(ts("2026-01-01"), TimeField::Week), Value::Int(1));
        assert_eq!(extract(ts("2025-12-29"), TimeField::Week), Value::Int(1));
    }
}
