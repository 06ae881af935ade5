//! SQL types and values.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    BigInt,
    Double,
    Text,
    Boolean,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
}

impl DataType {
    pub fn sql_name(self) -> &'static str {
        match self {
            DataType::BigInt => "BIGINT",
            DataType::Double => "DOUBLE",
            DataType::Text => "VARCHAR",
            DataType::Boolean => "BOOLEAN",
            DataType::Timestamp => "TIMESTAMP",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::BigInt | DataType::Double)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// One SQL value. `Timestamp` holds milliseconds since the Unix epoch (UTC).
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Int(i64),
    Double(f64),
    Text(Arc<str>),
    Bool(bool),
    Timestamp(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's type, `None` for NULL.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Int(_) => DataType::BigInt,
            Value::Double(_) => DataType::Double,
            Value::Text(_) => DataType::Text,
            Value::Bool(_) => DataType::Boolean,
            Value::Timestamp(_) => DataType::Timestamp,
        })
    }

    /// Total order used by comparisons and ORDER BY: NULL first, then by value; numbers
    /// compare across BIGINT and DOUBLE; -0.0 equals 0.0; NaN sorts after every other number.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Double(a), Double(b)) => cmp_doubles(*a, *b),
            (Int(a), Double(b)) => cmp_doubles(*a as f64, *b),
            (Double(a), Int(b)) => cmp_doubles(*a, *b as f64),
            (Text(a), Text(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Double(_) => 2,
            Value::Timestamp(_) => 3,
            Value::Text(_) => 4,
        }
    }
}

impl PartialEq for Value {
    /// Equality as grouping sees it: NULL equals NULL, doubles compare by bits after
    /// normalising -0.0 to 0.0.
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) => a == b,
            (Double(a), Double(b)) => normalize_bits(*a) == normalize_bits(*b),
            (Text(a), Text(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// Orders doubles totally, with -0.0 equal to 0.0 and every NaN one value above +inf —
/// the order grouping, comparisons and index lookups share.
fn cmp_doubles(a: f64, b: f64) -> Ordering {
    f64::from_bits(normalize_bits(a)).total_cmp(&f64::from_bits(normalize_bits(b)))
}

/// The bits of a double with -0.0 folded into 0.0 and every NaN into one NaN, so that equal
/// doubles group together.
pub fn normalize_bits(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

impl fmt::Display for Value {
    /// The text form used by CSV and table output: NULL is empty, timestamps as
    /// `YYYY-MM-DD HH:MM:SS[.fff]`, doubles in Rust's shortest round-trip form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Int(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v:?}"),
            Value::Text(v) => f.write_str(v),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
        }
    }
}

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS`, plus `.fff` when the
/// milliseconds are nonzero.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if milli == 0 {
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}")
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD HH:MM:SS.f{1,3}` (also with a
/// `T` separator and an optional trailing `Z`), as UTC.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, time) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut dp = date.splitn(3, '-');
    let y: i64 = parse_digits(dp.next()?, 4, 4)?;
    let m: i64 = parse_digits(dp.next()?, 1, 2)?;
    let d: i64 = parse_digits(dp.next()?, 1, 2)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * MS_PER_DAY;
    if let Some(time) = time {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut tp = hms.splitn(3, ':');
        let h: i64 = parse_digits(tp.next()?, 1, 2)?;
        let mi: i64 = parse_digits(tp.next()?, 1, 2)?;
        let s: i64 = parse_digits(tp.next()?, 1, 2)?;
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
        let milli = match frac {
            Some(f) => {
                let v: i64 = parse_digits(f, 1, 3)?;
                v * 10i64.pow(3 - f.len() as u32)
            }
            None => 0,
        };
        ms += h * 3_600_000 + mi * 60_000 + s * 1000 + milli;
    }
    Some(ms)
}

fn parse_digits(s: &str, min: usize, max: usize) -> Option<i64> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for text in [
            "1970-01-01 00:00:00",
            "2026-01-02 03:04:05",
            "2026-01-02 03:04:05.678",
            "2024-02-29 23:59:59.001",
            "1969-12-31 23:59:59.999",
            "1900-03-01 00:00:00",
        ] {
            let ms = parse_timestamp(text).unwrap();
            assert_eq!(format_timestamp(ms), text);
        }
        assert_eq!(
            parse_timestamp("2026-01-02 03:04:05.5"),
            parse_timestamp("2026-01-02 03:04:05.500")
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(
            parse_timestamp("2026-01-02T03:04:05Z"),
            parse_timestamp("2026-01-02 03:04:05")
        );
    }

    #[test]
    fn bad_timestamps_are_rejected() {
        for text in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-01-02 24:00:00",
            "abc",
            "2026-01-02 03:04:05.1234",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }
}

/// A grouping or primary key: the canonical, hashable encoding of one or more values of
/// known types. Fixed-width values (BIGINT, TIMESTAMP, BOOLEAN, DOUBLE bits) become `Int`,
/// so single-column numeric keys never allocate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Null,
    Int(i64),
    Text(Arc<str>),
    Composite(Box<[Key]>),
}

impl Key {
    pub fn from_value(value: &Value) -> Key {
        match value {
            Value::Null => Key::Null,
            Value::Int(v) | Value::Timestamp(v) => Key::Int(*v),
            Value::Double(v) => Key::Int(normalize_bits(*v) as i64),
            Value::Bool(v) => Key::Int(*v as i64),
            Value::Text(v) => Key::Text(v.clone()),
        }
    }

    /// The shard of this key among `shards` (at least 1): a hash of the key's canonical
    /// bytes, fixed by this definition (FNV-1a, then the splitmix64 finalizer), so that every
    /// node and every version of Strata puts a key in the same shard.
    pub fn shard(&self, shards: u32) -> u32 {
        fn feed(key: &Key, h: &mut u64) {
            let mut bytes = |b: &[u8]| {
                for &x in b {
                    *h = (*h ^ x as u64).wrapping_mul(0x0000_0100_0000_01B3);
                }
            };
            match key {
                Key::Null => bytes(&[0]),
                Key::Int(v) => {
                    bytes(&[1]);
                    bytes(&v.to_le_bytes());
                }
                Key::Text(t) => {
                    bytes(&[2]);
                    bytes(&(t.len() as u64).to_le_bytes());
                    bytes(t.as_bytes());
                }
                Key::Composite(parts) => {
                    bytes(&[3]);
                    bytes(&(parts.len() as u64).to_le_bytes());
                    for p in parts.iter() {
                        feed(p, h);
                    }
                }
            }
        }
        let mut h = 0xCBF2_9CE4_8422_2325u64;
        feed(self, &mut h);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        (h % shards.max(1) as u64) as u32
    }

    /// Decodes a single-column key of type `ty`.
    pub fn to_value(&self, ty: DataType) -> Value {
        match (self, ty) {
            (Key::Int(v), DataType::BigInt) => Value::Int(*v),
            (Key::Int(v), DataType::Timestamp) => Value::Timestamp(*v),
            (Key::Int(v), DataType::Double) => Value::Double(f64::from_bits(*v as u64)),
            (Key::Int(v), DataType::Boolean) => Value::Bool(*v != 0),
            (Key::Text(v), DataType::Text) => Value::Text(v.clone()),
            _ => Value::Null,
        }
    }
}
