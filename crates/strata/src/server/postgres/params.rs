//! Statements of the extended query protocol: the `$n` parameters found in the text, their
//! types inferred from where they stand, and the text with values bound to them.
//!
//! Strata's SQL has no parameters, so a bound statement is the client's text with each `$n`
//! replaced by its value as a literal (`'it''s'`, `TIMESTAMP '…'`): only the parameters'
//! tokens are replaced, so quotes and comments in the text are never touched, and a value
//! can never become SQL.
//!
//! A client that names a parameter's type (psycopg, JDBC) is followed. Otherwise the type is
//! that of the column the parameter meets: an `INSERT`'s target column, the column it is
//! compared with (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN (…)`, `BETWEEN … AND …`) or assigned
//! to (`SET col = $1`), and `int8` after `LIMIT`/`OFFSET`. A parameter found in none of these
//! places is `text`.

use super::types::{literal, pg_type_named};
use crate::error::SqlError;
use crate::sql::tokens_at;
use crate::types::Value;
use pgwire::api::Type;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

/// A statement prepared by a client.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The text as the client sent it.
    pub text: String,
    /// Each `$n` in the text: its byte offset and length, and `n - 1`.
    params_at: Vec<(usize, usize, usize)>,
    /// The type of each parameter, as described to the client.
    pub parameter_types: Vec<Type>,
}

/// The columns of an object as `(name, type)`, `None` if there is no such object.
pub type Columns = Vec<(String, Type)>;

impl Prepared {
    /// Finds the parameters of `text` and their types: `given` by the client where it names
    /// one, else inferred with `columns_of` (the columns of an object).
    pub fn new(
        text: &str,
        given: &[Option<Type>],
        columns_of: &mut dyn FnMut(&str) -> Option<Columns>,
    ) -> Result<Prepared, SqlError> {
        let tokens = tokens_at(text)?;
        let statements = tokens
            .split(|(_, t)| *t == Token::SemiColon)
            .filter(|s| !s.is_empty())
            .count();
        if statements > 1 {
            return Err(SqlError::Parse(
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        let mut params_at = Vec::new();
        for (at, token) in &tokens {
            if let Token::Placeholder(p) = token {
                let n = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=u16::MAX as usize).contains(n))
                    .ok_or_else(|| {
                        SqlError::Parse(format!(
                            "`{p}` is not a parameter; write parameters as $1, $2, …"
                        ))
                    })?;
                params_at.push((*at, p.len(), n - 1));
            }
        }
        let count = params_at
            .iter()
            .map(|&(_, _, i)| i + 1)
            .max()
            .unwrap_or(0)
            .max(given.len());
        let tokens: Vec<Token> = tokens.into_iter().map(|(_, t)| t).collect();
        let columns = relation_of(&tokens).and_then(|name| columns_of(&name));
        let mut inferred = vec![None; count];
        if let Some(columns) = &columns {
            infer(&tokens, columns, &mut inferred);
        }
        let parameter_types = (0..count)
            .map(|i| {
                given
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred[i].clone())
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(Prepared {
            text: text.to_string(),
            params_at,
            parameter_types,
        })
    }

    /// The text with `values` in place of its parameters (one value per parameter).
    pub fn bind(&self, values: &[Value]) -> Result<String, String> {
        if values.len() != self.parameter_types.len() {
            return Err(format!(
                "the statement has {} parameters, but {} values were bound",
                self.parameter_types.len(),
                values.len()
            ));
        }
        let mut out = String::with_capacity(self.text.len() + 16 * values.len());
        let mut copied = 0;
        for &(at, len, i) in &self.params_at {
            out.push_str(&self.text[copied..at]);
            out.push_str(&literal(&values[i]).map_err(|e| format!("parameter ${}: {e}", i + 1))?);
            copied = at + len;
        }
        out.push_str(&self.text[copied..]);
        Ok(out)
    }

    /// The text with a value of its type in place of each parameter: what a statement's
    /// description is worked out from, before its values are known.
    pub fn with_placeholder_values(&self) -> String {
        let values: Vec<Value> = self
            .parameter_types
            .iter()
            .map(|t| match *t {
                Type::INT2 | Type::INT4 | Type::INT8 => Value::Int(0),
                Type::FLOAT4 | Type::FLOAT8 => Value::Double(0.0),
                Type::BOOL => Value::Bool(false),
                Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE => Value::Timestamp(0),
                _ => Value::Text("".into()),
            })
            .collect();
        self.bind(&values).expect("one finite value per parameter")
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword)
}

/// The name a word stands for: as written when quoted, else in lower case (Strata folds
/// unquoted names to lower case).
fn name_of(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// The object after the first `INTO`, `UPDATE`, `FROM` or `DESCRIBE`; of a qualified name
/// (`public.t`), the last part.
fn relation_of(tokens: &[Token]) -> Option<String> {
    let at = tokens.iter().position(|t| {
        [Keyword::INTO, Keyword::UPDATE, Keyword::FROM]
            .iter()
            .any(|&k| is_keyword(t, k))
    })?;
    let mut i = at + 1;
    while tokens.get(i + 1) == Some(&Token::Period) {
        i += 2;
    }
    name_of(tokens.get(i)?)
}

/// The object a statement's text reads or writes, if it names one (`FROM t`, `INTO t`, …).
pub fn relation_in(text: &str) -> Option<String> {
    let tokens: Vec<Token> = tokens_at(text).ok()?.into_iter().map(|(_, t)| t).collect();
    relation_of(&tokens)
}

/// The parameter index of a `$n` token.
fn parameter(token: &Token) -> Option<usize> {
    match token {
        Token::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
        _ => None,
    }
}

/// Fills `types[i]` for the parameters whose type the tokens around them tell.
fn infer(tokens: &[Token], columns: &Columns, types: &mut [Option<Type>]) {
    let column_type = |token: &Token| -> Option<Type> {
        let name = name_of(token)?;
        columns
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, t)| t.clone())
    };
    let mut set = |i: usize, ty: Option<Type>| {
        if let (Some(slot), Some(ty)) = (types.get_mut(i), ty) {
            slot.get_or_insert(ty);
        }
    };
    infer_insert(tokens, columns, &mut set);
    let comparison = |t: &Token| {
        matches!(
            t,
            Token::Eq | Token::Neq | Token::Lt | Token::LtEq | Token::Gt | Token::GtEq
        )
    };
    for (i, token) in tokens.iter().enumerate() {
        let Some(n) = parameter(token) else { continue };
        let before = |k: usize| i.checked_sub(k).and_then(|j| tokens.get(j));
        let after = |k: usize| tokens.get(i + k);
        if before(1).is_some_and(comparison) {
            set(n, before(2).and_then(column_type));
        }
        if after(1).is_some_and(comparison) {
            set(n, after(2).and_then(column_type));
        }
        if before(1)
            .is_some_and(|t| is_keyword(t, Keyword::LIMIT) || is_keyword(t, Keyword::OFFSET))
        {
            set(n, Some(Type::INT8));
        }
        // col BETWEEN $a AND $b
        if before(1).is_some_and(|t| is_keyword(t, Keyword::BETWEEN)) {
            set(n, before(2).and_then(column_type));
        }
        if before(1).is_some_and(|t| is_keyword(t, Keyword::AND))
            && before(3).is_some_and(|t| is_keyword(t, Keyword::BETWEEN))
        {
            set(n, before(4).and_then(column_type));
        }
        // col IN ($a, $b, …): back over the list to its parenthesis.
        let mut j = i;
        while j > 0 && (parameter(&tokens[j]).is_some() || tokens[j] == Token::Comma) {
            j -= 1;
        }
        if tokens[j] == Token::LParen && j >= 2 && is_keyword(&tokens[j - 1], Keyword::IN) {
            let col = if is_keyword(&tokens[j - 2], Keyword::NOT) && j >= 3 {
                &tokens[j - 3]
            } else {
                &tokens[j - 2]
            };
            set(n, column_type(col));
        }
    }
}

/// `INSERT INTO t [(c, …)] VALUES (…), …`: a parameter that is a whole value takes its
/// column's type.
fn infer_insert(tokens: &[Token], columns: &Columns, set: &mut dyn FnMut(usize, Option<Type>)) {
    if !tokens
        .first()
        .is_some_and(|t| is_keyword(t, Keyword::INSERT))
    {
        return;
    }
    let Some(values) = tokens.iter().position(|t| is_keyword(t, Keyword::VALUES)) else {
        return;
    };
    // The target columns: those listed between the name and VALUES, else all in order.
    let listed: Vec<String> = match tokens[..values].iter().position(|t| *t == Token::LParen) {
        Some(open) => tokens[open + 1..values]
            .iter()
            .filter_map(name_of)
            .collect(),
        None => columns.iter().map(|(c, _)| c.clone()).collect(),
    };
    let type_of = |position: usize| {
        let name = listed.get(position)?;
        columns
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, t)| t.clone())
    };
    let (mut depth, mut position, mut element_start) = (0usize, 0usize, 0usize);
    for (i, token) in tokens.iter().enumerate().skip(values + 1) {
        match token {
            Token::LParen => {
                depth += 1;
                if depth == 1 {
                    position = 0;
                    element_start = i + 1;
                }
            }
            Token::Comma | Token::RParen if depth == 1 => {
                if i == element_start + 1 {
                    if let Some(n) = parameter(&tokens[element_start]) {
                        set(n, type_of(position));
                    }
                }
                position += 1;
                element_start = i + 1;
                if *token == Token::RParen {
                    depth = 0;
                }
            }
            Token::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0 && !matches!(token, Token::Comma) => break,
            _ => {}
        }
    }
}

/// The columns of an object from its `DESCRIBE` rows: `(column, type, …)`.
pub fn columns_from_describe(rows: &[Vec<Value>]) -> Columns {
    rows.iter()
        .filter_map(|row| match (row.first(), row.get(1)) {
            (Some(Value::Text(name)), Some(Value::Text(ty))) => {
                Some((name.to_string(), pg_type_named(ty)?))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Option<Columns> {
        (name == "users").then(|| {
            vec![
                ("id".to_string(), Type::INT8),
                ("age".to_string(), Type::INT4),
                ("name".to_string(), Type::TEXT),
                ("seen".to_string(), Type::TIMESTAMP),
            ]
        })
    }

    fn types_of(text: &str) -> Vec<Type> {
        Prepared::new(text, &[], &mut users)
            .unwrap()
            .parameter_types
    }

    #[test]
    fn parameter_types_come_from_the_columns_they_meet() {
        assert_eq!(
            types_of("INSERT INTO users VALUES ($1, $2, $3, $4)"),
            [Type::INT8, Type::INT4, Type::TEXT, Type::TIMESTAMP]
        );
        assert_eq!(
            types_of("INSERT INTO users (name, id) VALUES ($1, $2), ($3, 7)"),
            [Type::TEXT, Type::INT8, Type::TEXT]
        );
        assert_eq!(
            types_of("SELECT * FROM users WHERE id = $1 AND $2 < age LIMIT $3"),
            [Type::INT8, Type::INT4, Type::INT8]
        );
        assert_eq!(
            types_of("SELECT name FROM public.users WHERE age BETWEEN $1 AND $2 OR id IN ($3, $4)"),
            [Type::INT4, Type::INT4, Type::INT8, Type::INT8]
        );
        assert_eq!(
            types_of("UPDATE users SET name = $1 WHERE id NOT IN ($2)"),
            [Type::TEXT, Type::INT8]
        );
        // Nothing tells: text. The client's own types win.
        assert_eq!(types_of("SELECT $1 + 1 FROM users"), [Type::TEXT]);
        let given = [Some(Type::FLOAT8)];
        let p = Prepared::new("SELECT * FROM users WHERE id = $1", &given, &mut users).unwrap();
        assert_eq!(p.parameter_types, [Type::FLOAT8]);
    }

    #[test]
    fn binding_replaces_only_the_parameters() {
        let p = Prepared::new(
            "SELECT '$1', name FROM users -- $1\nWHERE name = $1 AND id = $2",
            &[],
            &mut users,
        )
        .unwrap();
        assert_eq!(p.parameter_types, [Type::TEXT, Type::INT8]);
        assert_eq!(
            p.bind(&[Value::Text("x'; DROP TABLE users; --".into()), Value::Int(3)])
                .unwrap(),
            "SELECT '$1', name FROM users -- $1\nWHERE name = 'x''; DROP TABLE users; --' AND id = 3"
        );
        assert!(p.bind(&[Value::Null]).unwrap_err().contains("2 parameters"));
        let unicode =
            Prepared::new("SELECT 'é' FROM users WHERE id = $1", &[], &mut users).unwrap();
        assert_eq!(
            unicode.bind(&[Value::Int(1)]).unwrap(),
            "SELECT 'é' FROM users WHERE id = 1"
        );
    }

    #[test]
    fn several_statements_and_other_placeholders_are_refused() {
        let err = Prepared::new("SELECT 1; SELECT 2", &[], &mut users).unwrap_err();
        assert!(err.to_string().contains("multiple commands"), "{err}");
        assert!(Prepared::new("SELECT 1;", &[], &mut users).is_ok());
        let err = Prepared::new("SELECT * FROM users WHERE id = ?", &[], &mut users).unwrap_err();
        assert!(err.to_string().contains("$1"), "{err}");
    }
}
