//! Rendering result sets as an aligned table, CSV (RFC 4180) or JSON.

use crate::engine::ResultSet;
use crate::types::Value;
use std::io::{self, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Writes one result set.
pub fn write_result(out: &mut dyn Write, rs: &ResultSet, format: OutputFormat) -> io::Result<()> {
    match format {
        OutputFormat::Csv => write_csv(out, rs),
        OutputFormat::Json => write_json(out, rs),
        OutputFormat::Table => write_table(out, rs),
    }
}

/// CSV: header line, RFC 4180 quoting, NULL as an empty field.
pub fn write_csv(out: &mut dyn Write, rs: &ResultSet) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(rs.column_names())?;
    let mut fields: Vec<String> = Vec::with_capacity(rs.columns.len());
    for row in &rs.rows {
        fields.clear();
        fields.extend(row.iter().map(Value::to_string));
        w.write_record(&fields)?;
    }
    w.flush()
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) => (*i).into(),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or_else(
            || serde_json::Value::String(format!("{d:?}")),
            serde_json::Value::Number,
        ),
        Value::Bool(b) => (*b).into(),
        Value::Text(_) | Value::Timestamp(_) => v.to_string().into(),
    }
}

/// JSON: one array of row objects per result set, on one line.
pub fn write_json(out: &mut dyn Write, rs: &ResultSet) -> io::Result<()> {
    let rows: Vec<serde_json::Value> = rs
        .rows
        .iter()
        .map(|row| {
            serde_json::Value::Object(
                rs.columns
                    .iter()
                    .zip(row)
                    .map(|((n, _), v)| (n.clone(), json_value(v)))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_writer(&mut *out, &rows)?;
    writeln!(out)
}

/// An aligned text table with a row count, like psql's.
pub fn write_table(out: &mut dyn Write, rs: &ResultSet) -> io::Result<()> {
    let cells: Vec<Vec<String>> = rs
        .rows
        .iter()
        .map(|r| r.iter().map(Value::to_string).collect())
        .collect();
    let widths: Vec<usize> = rs
        .columns
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([n.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, values: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let parts: Vec<String> = values
            .zip(&widths)
            .map(|(v, w)| format!(" {v:<w$} "))
            .collect();
        writeln!(out, "{}", parts.join("|").trim_end())
    };
    line(out, &mut rs.columns.iter().map(|(n, _)| n.as_str()))?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    )?;
    for row in &cells {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    let n = rs.rows.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
}
