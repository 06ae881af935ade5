//! Reading CSV (with a header row) and NDJSON files into typed batches for
//! [`Engine::insert_batch`](crate::Engine::insert_batch).

use crate::batch::{Batch, Column};
use crate::types::{parse_timestamp, DataType, Value};
use std::io::BufRead;
use std::sync::Arc;

/// A malformed input record.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{file}: line {line}: {message}")]
    Record {
        file: String,
        line: u64,
        message: String,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    NdJson,
}

impl Format {
    /// NDJSON for `.ndjson`/`.jsonl`, CSV otherwise.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("ndjson" | "jsonl") => Format::NdJson,
            _ => Format::Csv,
        }
    }
}

/// Accumulates rows for the target's columns and hands out full batches.
pub struct BatchReader<R> {
    file: String,
    format: Format,
    columns: Vec<(String, DataType)>,
    batch_size: usize,
    csv: Option<csv::Reader<R>>,
    /// CSV header position → target column.
    csv_map: Vec<Option<usize>>,
    lines: Option<std::io::Lines<R>>,
    line: u64,
}

impl<R: BufRead> BatchReader<R> {
    /// Reads `input` for a target with `columns`, `batch_size` rows per batch.
    pub fn new(
        file: &str,
        input: R,
        format: Format,
        columns: Vec<(String, DataType)>,
        batch_size: usize,
    ) -> Result<Self, IngestError> {
        let mut reader = BatchReader {
            file: file.to_string(),
            format,
            columns,
            batch_size: batch_size.max(1),
            csv: None,
            csv_map: Vec::new(),
            lines: None,
            line: 0,
        };
        match format {
            Format::Csv => {
                let mut csv = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_reader(input);
                let headers = csv
                    .headers()
                    .map_err(|e| reader.error(1, e.to_string()))?
                    .clone();
                for h in headers.iter() {
                    let name = h.trim().to_lowercase();
                    match reader.columns.iter().position(|(n, _)| *n == name) {
                        Some(i) if reader.csv_map.contains(&Some(i)) => {
                            return Err(reader
                                .error(1, format!("column `{name}` appears twice in the header")))
                        }
                        Some(i) => reader.csv_map.push(Some(i)),
                        None => {
                            return Err(reader.error(
                                1,
                                format!(
                                    "header names unknown column `{name}`; the target has: {}",
                                    reader.column_list()
                                ),
                            ))
                        }
                    }
                }
                reader.line = 1;
                reader.csv = Some(csv);
            }
            Format::NdJson => reader.lines = Some(input.lines()),
        }
        Ok(reader)
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn error(&self, line: u64, message: String) -> IngestError {
        IngestError::Record {
            file: self.file.clone(),
            line,
            message,
        }
    }

    /// The next batch, or `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, IngestError> {
        let mut values: Vec<Vec<Value>> = self
            .columns
            .iter()
            .map(|_| Vec::with_capacity(self.batch_size))
            .collect();
        let mut rows = 0;
        while rows < self.batch_size {
            let more = match self.format {
                Format::Csv => self.read_csv_row(&mut values)?,
                Format::NdJson => self.read_json_row(&mut values)?,
            };
            if !more {
                break;
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let mut batch = Batch::new();
        for ((name, ty), vals) in self.columns.iter().zip(&values) {
            if vals.len() == rows {
                batch.push_column(name.clone(), Column::from_values(*ty, vals));
            }
        }
        Ok(Some(batch))
    }

    /// Lines read so far (the header counts as line 1 for CSV).
    pub fn line(&self) -> u64 {
        self.line
    }

    fn read_csv_row(&mut self, values: &mut [Vec<Value>]) -> Result<bool, IngestError> {
        let mut record = csv::StringRecord::new();
        let csv = self.csv.as_mut().expect("csv reader");
        let more = csv
            .read_record(&mut record)
            .map_err(|e| IngestError::Record {
                file: self.file.clone(),
                line: self.line + 1,
                message: e.to_string(),
            })?;
        if !more {
            return Ok(false);
        }
        self.line += 1;
        if record.len() != self.csv_map.len() {
            return Err(self.error(
                self.line,
                format!(
                    "{} fields, but the header has {}",
                    record.len(),
                    self.csv_map.len()
                ),
            ));
        }
        for (field, target) in record.iter().zip(&self.csv_map) {
            let Some(i) = *target else { continue };
            let (name, ty) = &self.columns[i];
            let v = parse_field(field, *ty)
                .map_err(|m| self.error(self.line, format!("column `{name}`: {m}")))?;
            values[i].push(v);
        }
        Ok(true)
    }

    fn read_json_row(&mut self, values: &mut [Vec<Value>]) -> Result<bool, IngestError> {
        let lines = self.lines.as_mut().expect("line reader");
        let text = loop {
            match lines.next() {
                None => return Ok(false),
                Some(Err(source)) => {
                    return Err(IngestError::Io {
                        file: self.file.clone(),
                        source,
                    })
                }
                Some(Ok(l)) => {
                    self.line += 1;
                    if !l.trim().is_empty() {
                        break l;
                    }
                }
            }
        };
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| self.error(self.line, format!("invalid JSON object: {e}")))?;
        for key in obj.keys() {
            if !self.columns.iter().any(|(n, _)| n == &key.to_lowercase()) {
                return Err(self.error(
                    self.line,
                    format!(
                        "unknown column `{key}`; the target has: {}",
                        self.column_list()
                    ),
                ));
            }
        }
        for (i, (name, ty)) in self.columns.iter().enumerate() {
            let json = obj
                .iter()
                .find(|(k, _)| k.to_lowercase() == *name)
                .map(|(_, v)| v);
            let v = match json {
                None | Some(serde_json::Value::Null) => Value::Null,
                Some(serde_json::Value::String(s)) if *ty != DataType::Text => parse_field(s, *ty)
                    .map_err(|m| self.error(self.line, format!("column `{name}`: {m}")))?,
                Some(j) => json_value(j, *ty).ok_or_else(|| {
                    self.error(
                        self.line,
                        format!("column `{name}`: expected {ty}, got {j}"),
                    )
                })?,
            };
            values[i].push(v);
        }
        Ok(true)
    }
}

fn json_value(j: &serde_json::Value, ty: DataType) -> Option<Value> {
    use serde_json::Value as J;
    Some(match (ty, j) {
        (DataType::BigInt, J::Number(n)) => Value::Int(n.as_i64()?),
        (DataType::Double, J::Number(n)) => Value::Double(n.as_f64()?),
        (DataType::Timestamp, J::Number(n)) => Value::Timestamp(n.as_i64()?),
        (DataType::Boolean, J::Bool(b)) => Value::Bool(*b),
        (DataType::Text, J::String(s)) => Value::Text(Arc::from(s.as_str())),
        _ => return None,
    })
}

/// Parses one text field; an empty field is NULL.
pub fn parse_field(field: &str, ty: DataType) -> Result<Value, String> {
    if field.is_empty() {
        return Ok(Value::Null);
    }
    let t = field.trim();
    match ty {
        DataType::Text => Ok(Value::Text(Arc::from(field))),
        DataType::BigInt => t.parse().map(Value::Int).map_err(|_| format!("`{field}` is not a BIGINT")),
        DataType::Double => t.parse().map(Value::Double).map_err(|_| format!("`{field}` is not a DOUBLE")),
        DataType::Boolean => match t.to_lowercase().as_str() {
            "true" | "t" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{field}` is not a BOOLEAN (true/false)")),
        },
        DataType::Timestamp => parse_timestamp(t)
            .or_else(|| t.parse::<i64>().ok())
            .map(Value::Timestamp)
            .ok_or_else(|| format!("`{field}` is not a TIMESTAMP ('YYYY-MM-DD HH:MM:SS[.fff]' or epoch milliseconds)")),
    }
}
