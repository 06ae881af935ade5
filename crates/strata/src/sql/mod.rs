//! The SQL front end: sqlparser's tokenizer and parser with Strata's dialect, plus the
//! statements sqlparser does not know (`CREATE SOURCE`, `SHOW SOURCES`, `CHECKPOINT`, …).
//!
//! Public: splitting and parsing a script into [`Statement`]s, which
//! [`Engine::run`](crate::Engine::run) runs one at a time. sqlparser's syntax tree stays
//! inside the crate: the planner turns it into Strata's own `Plan`.

pub(crate) mod expr;
pub(crate) mod scalar;
pub(crate) mod time;

use crate::error::SqlError;
use crate::types::{DataType, Value};
use sqlparser::ast;
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The largest SQL text accepted in one call; larger input is refused before parsing.
pub const MAX_SQL_BYTES: usize = 64 << 20;
/// Expression nesting depth accepted before a statement is refused (protects the stack).
const RECURSION_LIMIT: usize = 64;
/// Operators one expression may chain, counted along its enclosing parentheses. sqlparser
/// builds `a OR b OR c …` iteratively, without [`RECURSION_LIMIT`], but binding, evaluating
/// and dropping the tree recurse once per operator: a long chain would overflow the stack.
const MAX_CHAINED_OPERATORS: usize = 128;

/// Strata's dialect: generic SQL identifiers and literals. The streaming statements are
/// recognised by [`Statements`] before sqlparser sees them.
#[derive(Debug, Default)]
pub(crate) struct StrataDialect;

impl Dialect for StrataDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }
}

static DIALECT: StrataDialect = StrataDialect;

/// A column as declared in `CREATE SOURCE` or `CREATE TABLE`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnSpec {
    pub name: String,
    pub ty: DataType,
    pub not_null: bool,
    /// What the declared type adds to `ty`: a length or an integer range.
    pub declared: Declared,
}

/// What a declared type adds to the type its values are stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Declared {
    /// Nothing: the stored type itself.
    Plain,
    /// `VARCHAR(n)`: at most `n` characters.
    Varchar(usize),
    /// `SMALLINT` (`INT2`): a BIGINT from -32768 to 32767.
    SmallInt,
    /// `INT` (`INTEGER`, `INT4`): a BIGINT from -2147483648 to 2147483647.
    Int,
}

impl Declared {
    /// The declared type's SQL name, for a column stored as `ty`.
    pub fn sql_name(self, ty: DataType) -> String {
        match self {
            Declared::Plain => ty.sql_name().to_string(),
            Declared::Varchar(n) => format!("VARCHAR({n})"),
            Declared::SmallInt => "SMALLINT".into(),
            Declared::Int => "INT".into(),
        }
    }

    /// Checks that `v` fits the declared type's range, if it has one (the stored type is
    /// checked elsewhere).
    pub fn check_range(self, v: &Value) -> Result<(), String> {
        let (name, range) = match self {
            Declared::SmallInt => ("SMALLINT", i16::MIN as i64..=i16::MAX as i64),
            Declared::Int => ("INT", i32::MIN as i64..=i32::MAX as i64),
            Declared::Plain | Declared::Varchar(_) => return Ok(()),
        };
        match v {
            Value::Int(i) if !range.contains(i) => Err(format!("{i} is out of range for {name}")),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectKind {
    Source,
    Table,
    View,
    Index,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Source => "source",
            ObjectKind::Table => "table",
            ObjectKind::View => "materialized view",
            ObjectKind::Index => "index",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Source => "SOURCES",
            ObjectKind::Table => "TABLES",
            ObjectKind::View => "VIEWS",
            ObjectKind::Index => "INDEXES",
        }
    }
}

/// One parsed statement, ready for [`Engine::run`](crate::Engine::run). Prints as SQL text
/// that parses back to the same statement.
#[derive(Clone, Debug)]
pub struct Statement(Parsed);

impl Statement {
    /// A short name of the statement's kind, e.g. for metrics: `select`, `insert`, ….
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// Whether it returns rows (SELECT, SHOW, DESCRIBE).
    pub fn returns_rows(&self) -> bool {
        matches!(
            self.0,
            Parsed::Query(_) | Parsed::Show(_) | Parsed::Describe(_)
        )
    }

    pub(crate) fn parsed(&self) -> &Parsed {
        &self.0
    }

    /// The rows an INSERT writes when it succeeds (each row inserted or replaced); `None`
    /// for other statements and for `ON CONFLICT`, which may skip rows.
    #[cfg(feature = "server")]
    pub(crate) fn rows_written(&self) -> Option<usize> {
        match &self.0 {
            Parsed::Insert {
                rows, on_conflict, ..
            } if !matches!(
                on_conflict,
                OnConflict::Skip { .. } | OnConflict::Update { .. }
            ) =>
            {
                Some(rows.len())
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A parsed statement, as the planner reads it.
#[derive(Clone, Debug)]
pub(crate) enum Parsed {
    CreateSource {
        name: String,
        columns: Vec<ColumnSpec>,
    },
    CreateTable {
        name: String,
        columns: Vec<ColumnSpec>,
        /// Positions of the key's columns, in the key's order.
        primary_key: Vec<usize>,
    },
    CreateView {
        name: String,
        query: Box<ast::Query>,
    },
    CreateIndex {
        name: String,
        table: String,
        column: String,
    },
    Insert {
        target: String,
        columns: Option<Vec<String>>,
        rows: InsertRows,
        on_conflict: OnConflict,
    },
    Delete {
        table: String,
        selection: Option<Box<ast::Expr>>,
    },
    Update {
        table: String,
        assignments: Vec<(String, ast::Expr)>,
        selection: Option<Box<ast::Expr>>,
    },
    Query(Box<ast::Query>),
    Show(ObjectKind),
    Describe(String),
    Drop {
        kind: ObjectKind,
        name: String,
        if_exists: bool,
    },
    Checkpoint,
}

impl Parsed {
    /// A short name of the statement's kind, e.g. for metrics: `select`, `insert`, ….
    pub fn kind(&self) -> &'static str {
        match self {
            Parsed::CreateSource { .. } => "create_source",
            Parsed::CreateTable { .. } => "create_table",
            Parsed::CreateView { .. } => "create_view",
            Parsed::CreateIndex { .. } => "create_index",
            Parsed::Insert { .. } => "insert",
            Parsed::Delete { .. } => "delete",
            Parsed::Update { .. } => "update",
            Parsed::Query(_) => "select",
            Parsed::Show(_) => "show",
            Parsed::Describe(_) => "describe",
            Parsed::Drop { .. } => "drop",
            Parsed::Checkpoint => "checkpoint",
        }
    }
}

/// What an INSERT does with a row whose primary key exists already.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OnConflict {
    /// The statement fails (a plain INSERT).
    Fail,
    /// The row replaces the existing one (`INSERT OR REPLACE`).
    Replace,
    /// The row is skipped (`ON CONFLICT [(key)] DO NOTHING`).
    Skip { target: Option<Vec<String>> },
    /// The existing row is updated (`ON CONFLICT (key) DO UPDATE SET … [WHERE …]`); the
    /// proposed row is `EXCLUDED`.
    Update {
        target: Vec<String>,
        assignments: Vec<(String, ast::Expr)>,
        selection: Option<Box<ast::Expr>>,
    },
}

/// The rows of `INSERT … VALUES`.
#[derive(Clone, Debug)]
pub(crate) enum InsertRows {
    /// Rows of plain literals, read straight from the tokens: the fast path of bulk inserts.
    Literals(Vec<Vec<Value>>),
    /// Rows with constant expressions (`1 + 2`, `TIMESTAMP '…'`), parsed by sqlparser.
    Exprs(Vec<Vec<ast::Expr>>),
}

impl InsertRows {
    pub fn len(&self) -> usize {
        match self {
            InsertRows::Literals(r) => r.len(),
            InsertRows::Exprs(r) => r.len(),
        }
    }
}

/// Parses `sql` statement by statement, so that a caller can run each before the next one
/// is parsed: an error late in a script — even one the tokenizer finds, like an unclosed
/// quote — does not stop the statements before it. Ends after the first error.
pub struct Statements<'a> {
    pieces: Pieces<'a>,
    failed: bool,
}

/// The statements of a script as text, split at top-level `;` (quotes and comments are
/// respected), without parsing them.
pub struct Pieces<'a> {
    sql: &'a str,
    /// Byte offset of the rest of the script.
    pos: usize,
    /// Line (from 1) and column (from 1, in characters) at `pos`.
    line: usize,
    column: usize,
}

/// One statement's text, with its `;` if it had one, and where it starts in the script.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    pub text: &'a str,
    pub line: usize,
    pub column: usize,
}

impl Piece<'_> {
    /// Parses the statement; `None` if the piece holds only blanks and comments. Error
    /// positions are those in the whole script.
    pub fn parse(&self) -> Option<Result<Statement, SqlError>> {
        parse_piece(self).map(|r| r.map(Statement))
    }

    /// Moves a position in this piece's text to the same place in the whole script.
    fn shift(&self, at: &mut sqlparser::tokenizer::Location) {
        if at.line == 0 {
            return; // no position
        }
        if at.line == 1 {
            at.column += self.column as u64 - 1;
        }
        at.line += self.line as u64 - 1;
    }
}

/// Splits a script into statements' texts.
pub fn pieces(sql: &str) -> Pieces<'_> {
    Pieces {
        sql,
        pos: 0,
        line: 1,
        column: 1,
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.pos >= self.sql.len() {
            return None;
        }
        let rest = &self.sql[self.pos..];
        // A piece keeps its `;`, so that errors at its end point at a location.
        let len = (statement_len(rest) + 1).min(rest.len());
        let piece = Piece {
            text: &rest[..len],
            line: self.line,
            column: self.column,
        };
        match piece.text.rfind('\n') {
            Some(i) => {
                self.line += piece.text.bytes().filter(|&b| b == b'\n').count();
                self.column = piece.text[i + 1..].chars().count() + 1;
            }
            None => self.column += piece.text.chars().count(),
        }
        self.pos += len;
        Some(piece)
    }
}

/// Splits and parses a script lazily, one statement at a time.
pub fn statements(sql: &str) -> Result<Statements<'_>, SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError::TooLarge {
            size: sql.len(),
            limit: MAX_SQL_BYTES,
        });
    }
    Ok(Statements {
        pieces: pieces(sql),
        failed: false,
    })
}

/// The length of the first statement of `sql`: up to its top-level `;` (excluded) or the
/// end. Quotes and comments are skipped, so a `;` inside them does not split.
fn statement_len(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b';' => return i,
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        // A doubled quote is an escaped quote.
                        if bytes.get(i + 1) == Some(&q) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// One token of a statement's text and the byte offset where it starts; whitespace and
/// comments are left out. For front ends that work on the text before it is parsed (the
/// PostgreSQL protocol's `$1` parameters).
#[cfg(feature = "server")]
pub(crate) fn tokens_at(text: &str) -> Result<Vec<(usize, Token)>, SqlError> {
    if text.len() > MAX_SQL_BYTES {
        return Err(SqlError::TooLarge {
            size: text.len(),
            limit: MAX_SQL_BYTES,
        });
    }
    let tokens = Tokenizer::new(&DIALECT, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(one_line(&e.to_string())))?;
    // Locations are lines and columns in characters, from 1; walk the text once.
    let mut out = Vec::with_capacity(tokens.len());
    let (mut line, mut column, mut offset) = (1u64, 1u64, 0usize);
    let mut chars = text.char_indices().peekable();
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        let at = t.span.start;
        while (line, column) < (at.line, at.column) {
            let Some((_, c)) = chars.next() else { break };
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
            offset = chars.peek().map_or(text.len(), |&(i, _)| i);
        }
        out.push((offset, t.token));
    }
    Ok(out)
}

/// Tokenizes and parses one statement's text.
fn parse_piece(piece: &Piece<'_>) -> Option<Result<Parsed, SqlError>> {
    // Positions are made those of the whole script by moving them, not by padding the text:
    // padding costs the statement's offset in the script, which is quadratic in a long line.
    let tokens = match Tokenizer::new(&DIALECT, piece.text).tokenize_with_location() {
        Ok(mut tokens) => {
            for t in &mut tokens {
                piece.shift(&mut t.span.start);
                piece.shift(&mut t.span.end);
            }
            tokens
        }
        Err(mut e) => {
            piece.shift(&mut e.location);
            return Some(Err(SqlError::Parse(one_line(&e.to_string()))));
        }
    };
    if tokens
        .iter()
        .all(|t| matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
    {
        return None;
    }
    if let Some(insert) = literal_insert(&tokens) {
        return Some(insert);
    }
    if let Err(e) = check_operator_chains(&tokens) {
        return Some(Err(e));
    }
    let flink_window = flink_window_function(&tokens);
    let mut parser = Parser::new(&DIALECT)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let result =
        parse_statement(&mut parser).and_then(|stmt| match parser.peek_token_ref().token {
            Token::EOF => Ok(stmt),
            Token::SemiColon if parser.peek_nth_token_ref(1).token == Token::EOF => Ok(stmt),
            _ => parser
                .expected("end of statement", parser.peek_token())
                .map_err(StmtError::from),
        });
    Some(result.map_err(|e| match e {
        StmtError::Parser(_) if flink_window.is_some() => {
            SqlError::Unsupported(format!(
            "Flink's form TABLE({0}(TABLE source, DESCRIPTOR(ts), …)): write FROM {0}(source, ts, \
             INTERVAL '…' SECOND{1})",
            flink_window.unwrap_or_default(),
            if flink_window == Some("HOP") { ", INTERVAL '…' SECOND" } else { "" }
        ))
        }
        StmtError::Parser(e) => parse_error(e),
        StmtError::Sql(e) => e,
    }))
}

/// `TABLE ( TUMBLE` or `TABLE ( HOP` among the tokens: Flink's window table functions, which
/// sqlparser does not read.
fn flink_window_function(tokens: &[TokenWithSpan]) -> Option<&'static str> {
    let words: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    words.windows(3).find_map(|w| match w {
        [Token::Word(table), Token::LParen, Token::Word(f)]
            if table.value.eq_ignore_ascii_case("table") =>
        {
            ["TUMBLE", "HOP"]
                .into_iter()
                .find(|name| f.value.eq_ignore_ascii_case(name))
        }
        _ => None,
    })
}

/// Refuses a script in which an expression chains more than [`MAX_CHAINED_OPERATORS`]
/// operators (a bound on the depth of its tree), before anything is parsed.
fn check_operator_chains(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    // Operators in the current comma-separated item, per open parenthesis.
    let mut levels: Vec<usize> = vec![0];
    let mut chained = 0usize;
    for t in tokens {
        match &t.token {
            Token::LParen => levels.push(0),
            Token::RParen if levels.len() > 1 => chained -= levels.pop().unwrap_or(0),
            Token::Comma => chained -= std::mem::take(levels.last_mut().expect("one level")),
            Token::SemiColon => {
                levels.truncate(1);
                levels[0] = 0;
                chained = 0;
            }
            Token::Word(w)
                if !matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::IS
                        | Keyword::IN
                        | Keyword::BETWEEN
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::XOR
                        | Keyword::DIV
                        | Keyword::COLLATE
                ) => {}
            Token::Whitespace(_)
            | Token::RParen
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::EOF => {}
            _ => {
                *levels.last_mut().expect("one level") += 1;
                chained += 1;
                if chained > MAX_CHAINED_OPERATORS {
                    return Err(SqlError::Parse(format!(
                        "expression chains more than {MAX_CHAINED_OPERATORS} operators{}; \
                         simplify it or split the statement",
                        t.span.start
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Parses exactly one statement.
pub(crate) fn parse_one(sql: &str) -> Result<Statement, SqlError> {
    let mut it = statements(sql)?;
    let first = it
        .next()
        .ok_or_else(|| SqlError::Parse("empty statement".into()))??;
    match it.next() {
        None => Ok(first),
        Some(_) => Err(SqlError::Parse(
            "expected one statement, found several".into(),
        )),
    }
}

impl Iterator for Statements<'_> {
    type Item = Result<Statement, SqlError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            match self.pieces.next()?.parse() {
                None => continue,
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Some(Ok(stmt)) => return Some(Ok(stmt)),
            }
        }
        None
    }
}

/// Why one statement was not parsed: its grammar, or a statement Strata does not accept.
enum StmtError {
    Parser(ParserError),
    Sql(SqlError),
}

impl From<ParserError> for StmtError {
    fn from(e: ParserError) -> Self {
        StmtError::Parser(e)
    }
}

impl From<SqlError> for StmtError {
    fn from(e: SqlError) -> Self {
        StmtError::Sql(e)
    }
}

fn parse_error(e: ParserError) -> SqlError {
    match e {
        ParserError::RecursionLimitExceeded => SqlError::Parse(format!(
            "expression nested deeper than {RECURSION_LIMIT} levels; simplify it"
        )),
        other => SqlError::Parse(one_line(
            other.to_string().trim_start_matches("sql parser error: "),
        )),
    }
}

/// A parser message on one line and of bounded length: sqlparser quotes the offending token
/// whole, which may be a huge literal. Keeps the start and the position at the end.
fn one_line(message: &str) -> String {
    let chars: Vec<char> = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if chars.len() <= 240 {
        return chars.into_iter().collect();
    }
    let head: String = chars[..160].iter().collect();
    let tail: String = chars[chars.len() - 60..].iter().collect();
    format!("{head}…{tail}")
}

/// Whether the next tokens are these words (case-insensitive), without consuming them.
fn peek_words(parser: &Parser<'_>, words: &[&str]) -> bool {
    let tokens = parser.peek_tokens_ref::<3>();
    words
        .iter()
        .zip(tokens)
        .all(|(w, t)| matches!(&t.token, Token::Word(word) if word.value.eq_ignore_ascii_case(w)))
}

fn skip(parser: &mut Parser<'_>, n: usize) {
    for _ in 0..n {
        parser.next_token();
    }
}

fn parse_statement(parser: &mut Parser<'_>) -> Result<Parsed, StmtError> {
    if peek_words(parser, &["create", "source"]) {
        skip(parser, 2);
        let name = parse_name(parser)?;
        let (columns, constraints) = parser.parse_columns()?;
        if !constraints.is_empty() {
            return Err(SqlError::Parse(
                "a source has no constraints: it is an append-only stream".into(),
            )
            .into());
        }
        if columns.is_empty() {
            return Err(SqlError::Parse(format!(
                "source `{name}` needs columns: CREATE SOURCE {name} (col TYPE, ...)"
            ))
            .into());
        }
        let columns = column_specs(&columns, None)?;
        return Ok(Parsed::CreateSource { name, columns });
    }
    if peek_words(parser, &["show"]) {
        skip(parser, 1);
        let what = parser.next_token();
        let kind = match &what.token {
            Token::Word(w) => match w.value.to_lowercase().as_str() {
                "sources" => ObjectKind::Source,
                "tables" => ObjectKind::Table,
                "views" => ObjectKind::View,
                "indexes" => ObjectKind::Index,
                _ => return Ok(parser.expected("SOURCES, TABLES, VIEWS or INDEXES", what)?),
            },
            _ => return Ok(parser.expected("SOURCES, TABLES, VIEWS or INDEXES", what)?),
        };
        return Ok(Parsed::Show(kind));
    }
    if peek_words(parser, &["describe"]) || peek_words(parser, &["desc"]) {
        skip(parser, 1);
        return Ok(Parsed::Describe(parse_name(parser)?));
    }
    if peek_words(parser, &["checkpoint"]) {
        skip(parser, 1);
        return Ok(Parsed::Checkpoint);
    }
    if peek_words(parser, &["drop", "source"]) {
        skip(parser, 2);
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        return Ok(Parsed::Drop {
            kind: ObjectKind::Source,
            name: parse_name(parser)?,
            if_exists,
        });
    }
    let stmt = parser.parse_statement()?;
    Ok(convert(stmt)?)
}

fn parse_name(parser: &mut Parser<'_>) -> Result<String, StmtError> {
    let name = parser.parse_object_name(false)?;
    Ok(expr::object_name(&name)?)
}

/// Column specs from sqlparser's column definitions; `primary_key` collects an inline
/// `PRIMARY KEY` column option.
fn column_specs(
    defs: &[ast::ColumnDef],
    mut primary_key: Option<&mut Vec<String>>,
) -> Result<Vec<ColumnSpec>, SqlError> {
    let mut specs = Vec::with_capacity(defs.len());
    for def in defs {
        let name = expr::checked_name(expr::ident_name(&def.name))?;
        if specs.iter().any(|s: &ColumnSpec| s.name == name) {
            return Err(SqlError::Parse(format!(
                "column `{name}` is declared twice"
            )));
        }
        let (ty, declared) = expr::data_type(&def.data_type)?;
        let mut not_null = false;
        for opt in &def.options {
            match &opt.option {
                ast::ColumnOption::NotNull => not_null = true,
                ast::ColumnOption::Null => not_null = false,
                ast::ColumnOption::PrimaryKey(_) => match primary_key.as_deref_mut() {
                    Some(keys) => keys.push(name.clone()),
                    None => {
                        return Err(SqlError::Parse(
                            "a source has no primary key: it is an append-only stream; use CREATE TABLE".into(),
                        ))
                    }
                },
                other => {
                    return Err(SqlError::Unsupported(format!("column option `{other}`")))
                }
            }
        }
        specs.push(ColumnSpec {
            name,
            ty,
            not_null,
            declared,
        });
    }
    Ok(specs)
}

/// Converts a statement parsed by sqlparser into one of ours, rejecting what Strata does not do.
fn convert(stmt: ast::Statement) -> Result<Parsed, SqlError> {
    use ast::Statement as S;
    let unsupported = |what: &str| Err(SqlError::Unsupported(what.to_string()));
    match stmt {
        S::CreateTable(ct) => {
            let name = expr::object_name(&ct.name)?;
            let mut keys = Vec::new();
            let columns = column_specs(&ct.columns, Some(&mut keys))?;
            for c in &ct.constraints {
                match c {
                    ast::TableConstraint::PrimaryKey(pk) => {
                        for col in &pk.columns {
                            match &col.column.expr {
                                ast::Expr::Identifier(id) => keys.push(expr::ident_name(id)),
                                other => {
                                    return unsupported(&format!(
                                        "primary key expression `{other}`"
                                    ))
                                }
                            }
                        }
                    }
                    other => return unsupported(&format!("table constraint `{other}`")),
                }
            }
            if keys.is_empty() {
                return Err(SqlError::Type(format!(
                    "table `{name}` needs a primary key: CREATE TABLE {name} (..., PRIMARY KEY (col)); \
                     for an append-only stream use CREATE SOURCE"
                )));
            }
            let mut primary_key = Vec::with_capacity(keys.len());
            for key in &keys {
                let i = columns.iter().position(|c| &c.name == key).ok_or_else(|| {
                    SqlError::Type(format!(
                        "primary key column `{key}` is not a column of `{name}`"
                    ))
                })?;
                if primary_key.contains(&i) {
                    return Err(SqlError::Type(format!(
                        "primary key column `{key}` of `{name}` is named twice"
                    )));
                }
                primary_key.push(i);
            }
            if keys.len() > 1 && ct.constraints.is_empty() {
                return unsupported("PRIMARY KEY on several columns: write PRIMARY KEY (a, b)");
            }
            if ct.query.is_some() {
                return unsupported("CREATE TABLE ... AS SELECT");
            }
            Ok(Parsed::CreateTable {
                name,
                columns,
                primary_key,
            })
        }
        S::CreateView(cv) => {
            if !cv.materialized {
                return unsupported("plain views: use CREATE MATERIALIZED VIEW");
            }
            if !cv.columns.is_empty() {
                return unsupported("a column list on a view: name columns with AS aliases");
            }
            Ok(Parsed::CreateView {
                name: expr::object_name(&cv.name)?,
                query: cv.query,
            })
        }
        S::CreateIndex(ci) => {
            let name = match &ci.name {
                Some(n) => expr::object_name(n)?,
                None => return Err(SqlError::Parse("CREATE INDEX needs a name".into())),
            };
            let column = match ci.columns.as_slice() {
                [c] => match &c.column.expr {
                    ast::Expr::Identifier(id) => expr::ident_name(id),
                    other => return unsupported(&format!("index on expression `{other}`")),
                },
                _ => return unsupported("an index on several columns"),
            };
            Ok(Parsed::CreateIndex {
                name,
                table: expr::object_name(&ci.table_name)?,
                column,
            })
        }
        S::Insert(ins) => {
            let target = match &ins.table {
                ast::TableObject::TableName(n) => expr::object_name(n)?,
                _ => return unsupported("INSERT into a table function"),
            };
            let mut on_conflict = match ins.or {
                None => OnConflict::Fail,
                Some(ast::SqliteOnConflict::Replace) => OnConflict::Replace,
                Some(other) => return unsupported(&format!("INSERT OR {other}")),
            };
            if ins.returning.is_some() {
                return unsupported("INSERT … RETURNING");
            }
            if let Some(on) = ins.on {
                if on_conflict != OnConflict::Fail {
                    return Err(SqlError::Parse(
                        "INSERT OR REPLACE with ON CONFLICT: use one of them".into(),
                    ));
                }
                on_conflict = on_conflict_clause(on)?;
            }
            let columns = if ins.columns.is_empty() {
                None
            } else {
                Some(
                    ins.columns
                        .iter()
                        .map(expr::object_name)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let rows = match ins.source.map(|q| *q.body) {
                Some(ast::SetExpr::Values(values)) => {
                    values.rows.into_iter().map(|r| r.content).collect()
                }
                _ => return unsupported("INSERT without VALUES: use INSERT INTO t VALUES (...)"),
            };
            Ok(Parsed::Insert {
                target,
                columns,
                rows: InsertRows::Exprs(rows),
                on_conflict,
            })
        }
        S::Delete(del) => {
            let tables = match &del.from {
                ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
            };
            let table = match tables.as_slice() {
                [t] if t.joins.is_empty() => match &t.relation {
                    ast::TableFactor::Table { name, .. } => expr::object_name(name)?,
                    _ => return unsupported("DELETE from a subquery"),
                },
                _ => return unsupported("DELETE from several tables"),
            };
            if del.using.is_some() || del.returning.is_some() || del.limit.is_some() {
                return unsupported("DELETE with USING, RETURNING or LIMIT");
            }
            Ok(Parsed::Delete {
                table,
                selection: del.selection.map(Box::new),
            })
        }
        S::Update(up) => {
            let table = match (&up.table.relation, up.table.joins.is_empty()) {
                (
                    ast::TableFactor::Table {
                        name, alias: None, ..
                    },
                    true,
                ) => expr::object_name(name)?,
                _ => return unsupported("UPDATE of a join, a subquery or an aliased table"),
            };
            if up.from.is_some()
                || up.returning.is_some()
                || up.or.is_some()
                || up.limit.is_some()
                || !up.order_by.is_empty()
            {
                return unsupported("UPDATE with FROM, RETURNING, OR, ORDER BY or LIMIT");
            }
            Ok(Parsed::Update {
                table,
                assignments: assignments(up.assignments)?,
                selection: up.selection.map(Box::new),
            })
        }
        S::Query(q) => Ok(Parsed::Query(q)),
        S::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => {
            let kind = match object_type {
                ast::ObjectType::Table => ObjectKind::Table,
                ast::ObjectType::MaterializedView | ast::ObjectType::View => ObjectKind::View,
                ast::ObjectType::Index => ObjectKind::Index,
                other => return unsupported(&format!("DROP {other}")),
            };
            let name = match names.as_slice() {
                [n] => expr::object_name(n)?,
                _ => return unsupported("dropping several objects in one statement"),
            };
            Ok(Parsed::Drop {
                kind,
                name,
                if_exists,
            })
        }
        S::ExplainTable { table_name, .. } => Ok(Parsed::Describe(expr::object_name(&table_name)?)),
        other => {
            let text = other.to_string();
            let head: String = text
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            unsupported(&format!("statement `{head} ...`"))
        }
    }
}

/// `SET col = expr, …` as column names and expressions.
fn assignments(list: Vec<ast::Assignment>) -> Result<Vec<(String, ast::Expr)>, SqlError> {
    let mut out: Vec<(String, ast::Expr)> = Vec::with_capacity(list.len());
    for a in list {
        let name = match &a.target {
            ast::AssignmentTarget::ColumnName(n) if n.0.len() == 1 => expr::object_name(n)?,
            other => {
                return Err(SqlError::Unsupported(format!(
                    "assignment to `{other}`: name one column of the table"
                )))
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(SqlError::Parse(format!(
                "column `{name}` is assigned twice"
            )));
        }
        out.push((name, a.value));
    }
    Ok(out)
}

/// PostgreSQL's `ON CONFLICT [(cols)] DO NOTHING | DO UPDATE SET … [WHERE …]`.
fn on_conflict_clause(on: ast::OnInsert) -> Result<OnConflict, SqlError> {
    let ast::OnInsert::OnConflict(on) = on else {
        return Err(SqlError::Unsupported(
            "ON DUPLICATE KEY UPDATE: use ON CONFLICT (key) DO UPDATE SET …".into(),
        ));
    };
    let target = match on.conflict_target {
        None => None,
        Some(ast::ConflictTarget::Columns(cols)) => {
            Some(cols.iter().map(expr::ident_name).collect::<Vec<_>>())
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            return Err(SqlError::Unsupported(format!(
                "ON CONFLICT ON CONSTRAINT {name}: name the primary key's columns, ON CONFLICT (key)"
            )))
        }
    };
    Ok(match on.action {
        ast::OnConflictAction::DoNothing => OnConflict::Skip { target },
        ast::OnConflictAction::DoUpdate(up) => OnConflict::Update {
            target: target.ok_or_else(|| {
                SqlError::Parse(
                    "ON CONFLICT DO UPDATE needs the conflict's columns: ON CONFLICT (key) DO UPDATE SET …"
                        .into(),
                )
            })?,
            assignments: assignments(up.assignments)?,
            selection: up.selection.map(Box::new),
        },
    })
}

impl std::fmt::Display for ColumnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            quote_ident(&self.name),
            self.declared.sql_name(self.ty)
        )?;
        if self.not_null {
            f.write_str(" NOT NULL")?;
        }
        Ok(())
    }
}

/// A literal value as SQL text.
fn sql_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Timestamp(_) => format!("TIMESTAMP '{v}'"),
        Value::Int(_) | Value::Double(_) => format!("{v}"),
    }
}

/// Reads `INSERT [OR REPLACE] INTO name [(cols)] VALUES (lit, …), …` whose values are all
/// plain literals straight from the tokens, without building a syntax tree. `None` for
/// anything else, which then goes through the full parser (and gets its error messages).
fn literal_insert(tokens: &[TokenWithSpan]) -> Option<Result<Parsed, SqlError>> {
    let mut it = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    let keyword =
        |t: Option<&Token>, k: Keyword| matches!(t, Some(Token::Word(w)) if w.keyword == k);
    let name = |t: Option<&Token>| match t {
        Some(Token::Word(w)) if w.quote_style == Some('"') => Some(w.value.clone()),
        Some(Token::Word(w)) if w.quote_style.is_none() && w.keyword == Keyword::NoKeyword => {
            Some(w.value.to_lowercase())
        }
        _ => None,
    };
    if !keyword(it.next(), Keyword::INSERT) {
        return None;
    }
    let mut next = it.next();
    let replace = keyword(next, Keyword::OR);
    if replace {
        if !keyword(it.next(), Keyword::REPLACE) {
            return None;
        }
        next = it.next();
    }
    if !keyword(next, Keyword::INTO) {
        return None;
    }
    let target = name(it.next())?;
    let mut columns = None;
    if it.peek() == Some(&&Token::LParen) {
        it.next();
        let mut cols = Vec::new();
        loop {
            cols.push(name(it.next())?);
            match it.next()? {
                Token::Comma => continue,
                Token::RParen => break,
                _ => return None,
            }
        }
        columns = Some(cols);
    }
    if !keyword(it.next(), Keyword::VALUES) {
        return None;
    }
    let mut rows = Vec::new();
    loop {
        if it.next()? != &Token::LParen {
            return None;
        }
        let mut row = Vec::with_capacity(columns.as_ref().map_or(4, Vec::len));
        loop {
            let value = match it.next()? {
                Token::Number(n, false) => ast::Value::Number(n.clone(), false),
                Token::Minus => match it.next()? {
                    Token::Number(n, false) => ast::Value::Number(format!("-{n}"), false),
                    _ => return None,
                },
                Token::SingleQuotedString(text) => ast::Value::SingleQuotedString(text.clone()),
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::NULL => {
                    ast::Value::Null
                }
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::TRUE => {
                    ast::Value::Boolean(true)
                }
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::FALSE => {
                    ast::Value::Boolean(false)
                }
                _ => return None,
            };
            row.push(value);
            match it.next()? {
                Token::Comma => continue,
                Token::RParen => break,
                _ => return None,
            }
        }
        rows.push(row);
        match it.next() {
            Some(Token::Comma) => continue,
            Some(Token::SemiColon) | Some(Token::EOF) | None
                if it.all(|t| matches!(t, Token::SemiColon | Token::EOF)) =>
            {
                break
            }
            _ => return None,
        }
    }
    let rows = rows
        .into_iter()
        .map(|row| row.iter().map(expr::literal).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>();
    Some(rows.map(|rows| Parsed::Insert {
        target,
        columns,
        rows: InsertRows::Literals(rows),
        on_conflict: if replace {
            OnConflict::Replace
        } else {
            OnConflict::Fail
        },
    }))
}

/// An identifier as SQL text: bare when it reads back as itself, double-quoted otherwise.
pub(crate) fn quote_ident(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && sqlparser::keywords::ALL_KEYWORDS
            .binary_search(&name.to_uppercase().as_str())
            .is_err();
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `col = expr, …` as SQL text.
fn set_list(assignments: &[(String, ast::Expr)]) -> String {
    assignments
        .iter()
        .map(|(c, e)| format!("{} = {e}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements as SQL text that parses back to the same statement: the form in which
/// persistent tiers log DDL.
impl std::fmt::Display for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |cols: &[ColumnSpec]| {
            cols.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Parsed::CreateSource { name, columns } => {
                write!(f, "CREATE SOURCE {} ({})", quote_ident(name), list(columns))
            }
            Parsed::CreateTable {
                name,
                columns,
                primary_key,
            } => write!(
                f,
                "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
                quote_ident(name),
                list(columns),
                primary_key
                    .iter()
                    .map(|&k| quote_ident(&columns[k].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Parsed::CreateView { name, query } => {
                write!(
                    f,
                    "CREATE MATERIALIZED VIEW {} AS {query}",
                    quote_ident(name)
                )
            }
            Parsed::CreateIndex {
                name,
                table,
                column,
            } => write!(
                f,
                "CREATE INDEX {} ON {} ({})",
                quote_ident(name),
                quote_ident(table),
                quote_ident(column)
            ),
            Parsed::Insert {
                target,
                columns,
                rows,
                on_conflict,
            } => {
                write!(
                    f,
                    "INSERT {}INTO {}",
                    if *on_conflict == OnConflict::Replace {
                        "OR REPLACE "
                    } else {
                        ""
                    },
                    quote_ident(target)
                )?;
                if let Some(cols) = columns {
                    let cols: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
                    write!(f, " ({})", cols.join(", "))?;
                }
                let row = |r: Vec<String>| format!("({})", r.join(", "));
                let rows: Vec<String> = match rows {
                    InsertRows::Exprs(rows) => rows
                        .iter()
                        .map(|r| row(r.iter().map(ToString::to_string).collect()))
                        .collect(),
                    InsertRows::Literals(rows) => rows
                        .iter()
                        .map(|r| row(r.iter().map(sql_literal).collect()))
                        .collect(),
                };
                write!(f, " VALUES {}", rows.join(", "))?;
                let targets = |cols: &[String]| {
                    let cols: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
                    format!(" ({})", cols.join(", "))
                };
                match on_conflict {
                    OnConflict::Fail | OnConflict::Replace => Ok(()),
                    OnConflict::Skip { target } => write!(
                        f,
                        " ON CONFLICT{} DO NOTHING",
                        target.as_deref().map(targets).unwrap_or_default()
                    ),
                    OnConflict::Update {
                        target,
                        assignments,
                        selection,
                    } => {
                        write!(
                            f,
                            " ON CONFLICT{} DO UPDATE SET {}",
                            targets(target),
                            set_list(assignments)
                        )?;
                        match selection {
                            Some(s) => write!(f, " WHERE {s}"),
                            None => Ok(()),
                        }
                    }
                }
            }
            Parsed::Update {
                table,
                assignments,
                selection,
            } => {
                write!(
                    f,
                    "UPDATE {} SET {}",
                    quote_ident(table),
                    set_list(assignments)
                )?;
                match selection {
                    Some(s) => write!(f, " WHERE {s}"),
                    None => Ok(()),
                }
            }
            Parsed::Delete { table, selection } => {
                write!(f, "DELETE FROM {}", quote_ident(table))?;
                match selection {
                    Some(s) => write!(f, " WHERE {s}"),
                    None => Ok(()),
                }
            }
            Parsed::Query(q) => write!(f, "{q}"),
            Parsed::Show(kind) => write!(f, "SHOW {}", kind.plural()),
            Parsed::Describe(name) => write!(f, "DESCRIBE {}", quote_ident(name)),
            Parsed::Drop {
                kind,
                name,
                if_exists,
            } => {
                let what = match kind {
                    ObjectKind::Source => "SOURCE",
                    ObjectKind::Table => "TABLE",
                    ObjectKind::View => "MATERIALIZED VIEW",
                    ObjectKind::Index => "INDEX",
                };
                write!(
                    f,
                    "DROP {what} {}{}",
                    if *if_exists { "IF EXISTS " } else { "" },
                    quote_ident(name)
                )
            }
            Parsed::Checkpoint => f.write_str("CHECKPOINT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_respect_quotes_and_comments_and_keep_positions() {
        let script = "SELECT 'a;b' FROM t; -- c;d\n/* e;f */ SELECT \"x;y\" FROM u;\n-- only a comment;\n  ;SELECT 1 FROM v";
        let found: Vec<Piece<'_>> = pieces(script).filter(|p| p.parse().is_some()).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].text.contains("'a;b'"));
        assert!(found[1].text.contains("\"x;y\""));
        assert!(found[2].text.ends_with("SELECT 1 FROM v"));
        // The third piece starts right after the `;` on the fourth line, column 4.
        assert_eq!((found[2].line, found[2].column), (4, 4));
        let err = pieces("SELECT 1 FROM t;\n   SELEC 2")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("Line: 2, Column: 4"), "{err}");
        // The tokenizer's positions too, on the first line and on later ones.
        let err = pieces("SELECT 1;  SELECT 'open")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("Line: 1, Column: 19"), "{err}");
        let err = pieces("SELECT 1;\n\n  SELECT 1 + )")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("Line: 3, Column: 14"), "{err}");
    }

    /// The literal fast path of INSERT reads exactly what the full parser and evaluator read.
    #[test]
    fn literal_inserts_match_the_full_parser() {
        let texts = [
            "INSERT INTO t VALUES (1, 'it''s', NULL, -2.5, TRUE, FALSE, -9223372036854775808, 1e3)",
            "insert or replace into \"T\" (a, \"B\") values (0, ''), (-0, '2026-01-02 03:04:05');",
            "INSERT INTO t VALUES (9223372036854775807)",
        ];
        for text in texts {
            let tokens = Tokenizer::new(&DIALECT, text)
                .tokenize_with_location()
                .unwrap();
            let fast = literal_insert(&tokens)
                .expect("takes the fast path")
                .unwrap();
            let mut parser = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
            let Ok(full) = parse_statement(&mut parser) else {
                panic!("full parse of {text}")
            };
            let (
                Parsed::Insert {
                    rows: InsertRows::Literals(fast_rows),
                    target: t1,
                    columns: c1,
                    on_conflict: r1,
                },
                Parsed::Insert {
                    rows: InsertRows::Exprs(full_rows),
                    target: t2,
                    columns: c2,
                    on_conflict: r2,
                },
            ) = (fast, full)
            else {
                panic!("both are inserts: {text}")
            };
            assert_eq!((t1, c1, r1), (t2, c2, r2));
            let full_values: Vec<Vec<Value>> = full_rows
                .iter()
                .map(|r| r.iter().map(|e| expr::eval_constant(e).unwrap()).collect())
                .collect();
            assert_eq!(fast_rows, full_values, "{text}");
        }
        for slow in [
            "INSERT INTO t VALUES (1 + 2)",
            "INSERT INTO t VALUES (TIMESTAMP '2026-01-01 00:00:00')",
            "INSERT INTO t SELECT 1",
        ] {
            let tokens = Tokenizer::new(&DIALECT, slow)
                .tokenize_with_location()
                .unwrap();
            assert!(literal_insert(&tokens).is_none(), "{slow}");
        }
    }

    /// Every statement's SQL text parses back to a statement with the same text.
    #[test]
    fn statements_round_trip_through_their_text() {
        let script = r#"
            CREATE SOURCE "Events" (k BIGINT NOT NULL, "select" VARCHAR(10), v DOUBLE, ok BOOLEAN, ts TIMESTAMP);
            CREATE TABLE t (id BIGINT, name TEXT NOT NULL, PRIMARY KEY (id));
            CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) AS n, tumble(ts, INTERVAL '1' MINUTE) AS w
                FROM "Events" WHERE v > 1.5 GROUP BY k, tumble(ts, INTERVAL '1' MINUTE);
            CREATE INDEX i ON t (name);
            INSERT OR REPLACE INTO t (id, name) VALUES (1, 'it''s'), (2, NULL);
            DELETE FROM t WHERE id = 1 AND name IS NOT NULL;
            UPDATE t SET name = upper(name), "select" = 2 WHERE id > 1;
            INSERT INTO t VALUES (1, 'a') ON CONFLICT DO NOTHING;
            INSERT INTO t VALUES (1, 'a') ON CONFLICT (id) DO NOTHING;
            INSERT INTO t VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = excluded.name || t.name WHERE t.id > 0;
            SELECT * FROM v ORDER BY n DESC LIMIT 3;
            SHOW VIEWS; DESCRIBE t; DROP MATERIALIZED VIEW IF EXISTS v; DROP SOURCE "Events"; CHECKPOINT
        "#;
        for stmt in statements(script).unwrap() {
            let text = stmt.unwrap().to_string();
            let again = parse_one(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(again.to_string(), text);
        }
    }
}
