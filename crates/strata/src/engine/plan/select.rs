//! Planning `SELECT`: projection or grouped aggregation, plus ORDER BY and LIMIT.

use crate::engine::aggregate::{AggFunc, AggPlan, AggSpec, SessionWindow, Windowing};
use crate::error::SqlError;
use crate::sql::expr::{self, bind, bind_with, function_args, is_aggregate, BinOp, Expr, Scope};
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::borrow::Cow;

/// What a SELECT computes from its input rows.
#[derive(Clone, Debug)]
pub enum SelectPlan {
    Project {
        /// Expands the input into its windows first (`FROM TUMBLE(…)`, `FROM HOP(…)`).
        window: Option<Windowing>,
        filter: Option<Expr>,
        output: Vec<Expr>,
    },
    Aggregate(AggPlan),
}

/// A planned SELECT. `output` expressions yield `columns` followed by hidden sort columns.
#[derive(Clone, Debug)]
pub struct PlannedSelect {
    pub plan: SelectPlan,
    pub columns: Vec<(String, DataType)>,
    /// (output column, descending, nulls first)
    pub order: Vec<(usize, bool, bool)>,
    /// `SELECT DISTINCT` over aggregated rows: duplicates are removed from the answer. (A
    /// `DISTINCT` without aggregates is planned as a `GROUP BY` of every output column.)
    pub distinct: bool,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// The single `Select` of a query, rejecting what Strata does not do.
pub fn simple_select(query: &ast::Query) -> Result<&ast::Select, SqlError> {
    if query.with.is_some() {
        return Err(SqlError::Unsupported("WITH".into()));
    }
    match query.body.as_ref() {
        ast::SetExpr::Select(s) => {
            if let Some(ast::Distinct::On(_)) = s.distinct {
                return Err(SqlError::Unsupported(
                    "DISTINCT ON: use GROUP BY, or SELECT DISTINCT".into(),
                ));
            }
            Ok(s)
        }
        ast::SetExpr::Query(q) => simple_select(q),
        _ => Err(SqlError::Unsupported(
            "set operations and VALUES queries".into(),
        )),
    }
}

/// The one table a SELECT reads (in a window table function, its first argument).
pub fn from_name(select: &ast::Select) -> Result<String, SqlError> {
    if let Some((name, args)) = window_function(select)? {
        return match args.first() {
            Some(ast::Expr::Identifier(id)) => Ok(expr::ident_name(id)),
            Some(ast::Expr::CompoundIdentifier(parts)) => {
                Ok(parts.last().map(expr::ident_name).unwrap_or_default())
            }
            _ => Err(SqlError::Type(format!(
                "{name}'s first argument names the source, table or view it reads: {}",
                window_usage(name)
            ))),
        };
    }
    match select.from.as_slice() {
        [t] if t.joins.is_empty() => match &t.relation {
            ast::TableFactor::Table {
                name, args: None, ..
            } => expr::object_name(name),
            _ => Err(SqlError::Unsupported(
                "FROM must name a source, a table or a materialized view (no subqueries or table functions)".into(),
            )),
        },
        [] => Err(SqlError::Unsupported("SELECT without FROM".into())),
        _ => Err(SqlError::Unsupported(
            "joins and several tables in FROM".into(),
        )),
    }
}

/// The window table function in FROM, if there is one: its name and its arguments.
fn window_function(
    select: &ast::Select,
) -> Result<Option<(&'static str, Vec<&ast::Expr>)>, SqlError> {
    let [t] = select.from.as_slice() else {
        return Ok(None);
    };
    let ast::TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = &t.relation
    else {
        return Ok(None);
    };
    let function = match expr::object_name(name)?.as_str() {
        "tumble" => "TUMBLE",
        "hop" => "HOP",
        "session" => "SESSION",
        other => {
            return Err(SqlError::Unsupported(format!(
                "table function `{other}` in FROM: the window functions are {}, {} and {}",
                window_usage("TUMBLE"),
                window_usage("HOP"),
                window_usage("SESSION")
            )))
        }
    };
    let args = args
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(SqlError::Unsupported(format!(
                "argument `{other}` of {function}: {}",
                window_usage(function)
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some((function, args)))
}

fn window_usage(function: &str) -> &'static str {
    match function {
        "HOP" => "HOP(source, ts_column, INTERVAL 'slide', INTERVAL 'size')",
        "SESSION" => "SESSION(source, ts_column, INTERVAL 'gap')",
        _ => "TUMBLE(source, ts_column, INTERVAL 'size')",
    }
}

/// The window of a query.
enum QueryWindow {
    /// Each row expanded into every window that contains it (`TUMBLE`, `HOP`).
    Expand(Windowing),
    /// Rows grouped into sessions (`SESSION`): the timestamp and the gap.
    Session { ts: Expr, gap_ms: i64 },
}

fn is_name(e: &ast::Expr, name: &str) -> bool {
    matches!(e, ast::Expr::Identifier(id) if expr::ident_name(id) == name)
}

/// Whether `e` reads `window_start` or `window_end`.
fn reads_window_bounds(e: &ast::Expr) -> bool {
    ast::visit_expressions(e, |sub| {
        if is_name(sub, "window_start") || is_name(sub, "window_end") {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// A session query as the planner reads it: `window_start` is a group key (the session's
/// first timestamp), and `window_end` becomes `MAX(ts) + gap` wherever it appears (grouping
/// by the start is enough; the end follows from the session's rows).
fn session_query(query: &ast::Query, ts: &ast::Expr, gap_ms: i64) -> Result<ast::Query, SqlError> {
    let select = simple_select(query)?;
    let ast::GroupByExpr::Expressions(groups, _) = &select.group_by else {
        return Err(SqlError::Unsupported("GROUP BY ALL / ROLLUP / CUBE".into()));
    };
    if groups.iter().filter(|g| is_name(g, "window_start")).count() != 1 {
        return Err(SqlError::Type(
            "a SESSION window groups rows by session: name `window_start` once in GROUP BY".into(),
        ));
    }
    let misplaced = groups
        .iter()
        .filter(|g| !is_name(g, "window_start") && !is_name(g, "window_end"))
        .chain(&select.selection)
        .find(|e| reads_window_bounds(e))
        .map(ToString::to_string)
        .or_else(|| {
            let found = ast::visit_expressions(query, |sub| match sub {
                ast::Expr::Function(f)
                    if is_aggregate(&f.name.to_string().to_lowercase())
                        && reads_window_bounds(sub) =>
                {
                    std::ops::ControlFlow::Break(sub.to_string())
                }
                _ => std::ops::ControlFlow::Continue(()),
            });
            found.break_value()
        });
    if let Some(e) = misplaced {
        return Err(SqlError::Unsupported(format!(
            "`{}`: a session's window_start and window_end move as rows arrive, so only \
             GROUP BY window_start, the select list, HAVING and ORDER BY may read them",
            expr::excerpt(&e)
        )));
    }
    let end_text = format!("(MAX({ts}) + {gap_ms})");
    let end = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect)
        .try_with_sql(&end_text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Type(format!("session window end `{end_text}`: {e}")))?;
    let mut rewritten = query.clone();
    if let ast::SetExpr::Select(select) = rewritten.body.as_mut() {
        if let ast::GroupByExpr::Expressions(groups, _) = &mut select.group_by {
            groups.retain(|g| !is_name(g, "window_end"));
        }
        for item in &mut select.projection {
            if let ast::SelectItem::UnnamedExpr(e) = item {
                if is_name(e, "window_end") {
                    *item = ast::SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: ast::Ident::new("window_end"),
                    };
                }
            }
        }
    }
    let _ = ast::visit_expressions_mut(&mut rewritten, |e| {
        if is_name(e, "window_end") {
            *e = end.clone();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(rewritten)
}

/// The most windows a row may fall in (a hop's size over its slide).
const MAX_WINDOWS_PER_ROW: i64 = 1024;

fn windowing(ts: Expr, slide_ms: i64, size_ms: i64) -> Result<Windowing, SqlError> {
    if ts.ty() != Some(DataType::Timestamp) {
        return Err(SqlError::Type(format!(
            "a window needs a TIMESTAMP column, got {}",
            ts.ty().map_or("NULL", DataType::sql_name)
        )));
    }
    if size_ms / slide_ms > MAX_WINDOWS_PER_ROW {
        return Err(SqlError::Unsupported(format!(
            "a hop window of {size_ms} ms sliding by {slide_ms} ms puts each row in {} windows; \
             at most {MAX_WINDOWS_PER_ROW}: use a longer slide",
            size_ms / slide_ms
        )));
    }
    Ok(Windowing {
        ts,
        slide_ms,
        size_ms,
    })
}

/// The query's window — a window table function in FROM, or `hop(ts, slide, size)` in
/// GROUP BY — and the query as it reads the window's columns: a `hop(…)` call becomes
/// `window_start` and `hop_end(…)` with the same arguments `window_end`.
fn windowed<'q>(
    query: &'q ast::Query,
    input: &Scope<'_>,
) -> Result<(Cow<'q, ast::Query>, Option<QueryWindow>), SqlError> {
    let select = simple_select(query)?;
    if let Some((function, args)) = window_function(select)? {
        if function == "SESSION" {
            let [_, ts, gap] = args.as_slice() else {
                return Err(SqlError::Type(format!(
                    "SESSION takes {}",
                    window_usage(function)
                )));
            };
            let gap_ms = expr::interval_ms(gap)?;
            let bound = windowing(bind(ts, input)?, gap_ms, gap_ms)?.ts;
            return Ok((
                Cow::Owned(session_query(query, ts, gap_ms)?),
                Some(QueryWindow::Session { ts: bound, gap_ms }),
            ));
        }
        let (ts, slide, size) = match args.as_slice() {
            [_, ts, size] if function == "TUMBLE" => (ts, size, size),
            [_, ts, slide, size] if function == "HOP" => (ts, slide, size),
            _ => {
                return Err(SqlError::Type(format!(
                    "{function} takes {}",
                    window_usage(function)
                )))
            }
        };
        let window = windowing(
            bind(ts, input)?,
            expr::interval_ms(slide)?,
            expr::interval_ms(size)?,
        )?;
        return Ok((Cow::Borrowed(query), Some(QueryWindow::Expand(window))));
    }
    let ast::GroupByExpr::Expressions(groups, _) = &select.group_by else {
        return Ok((Cow::Borrowed(query), None));
    };
    let call_args = |e: &ast::Expr, wanted: &str| -> Option<Vec<ast::Expr>> {
        let ast::Expr::Function(f) = e else {
            return None;
        };
        if f.name.to_string().to_lowercase() != wanted {
            return None;
        }
        function_args(f)
            .ok()
            .map(|a| a.into_iter().cloned().collect())
    };
    let Some(args) = groups.iter().find_map(|g| call_args(g, "hop")) else {
        return Ok((Cow::Borrowed(query), None));
    };
    let [ts, slide, size] = args.as_slice() else {
        return Err(SqlError::Type(
            "hop takes three arguments: hop(ts_column, INTERVAL 'slide', INTERVAL 'size')".into(),
        ));
    };
    let window = windowing(
        bind(ts, input)?,
        expr::interval_ms(slide)?,
        expr::interval_ms(size)?,
    )?;
    let mut rewritten = query.clone();
    let mut other_window = None;
    let _ = ast::visit_expressions_mut(&mut rewritten, |e| {
        let start = || ast::Expr::Identifier(ast::Ident::new("window_start"));
        for function in ["hop", "hop_end"] {
            match call_args(e, function) {
                Some(a) if a == args && function == "hop" => *e = start(),
                // The end follows from the start, so that grouping by the start is enough.
                Some(a) if a == args => {
                    *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                        left: Box::new(start()),
                        op: ast::BinaryOperator::Plus,
                        right: Box::new(ast::Expr::value(ast::Value::Number(
                            window.size_ms.to_string(),
                            false,
                        ))),
                    }))
                }
                Some(_) => other_window = Some(e.to_string()),
                None => {}
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(other) = other_window {
        return Err(SqlError::Unsupported(format!(
            "`{}`: a query has one hop window; name it with the same arguments everywhere",
            expr::excerpt(&other)
        )));
    }
    Ok((Cow::Owned(rewritten), Some(QueryWindow::Expand(window))))
}

/// Whether an aggregate call occurs anywhere in `e`.
fn contains_aggregate(e: &ast::Expr) -> bool {
    ast::visit_expressions(e, |sub| match sub {
        ast::Expr::Function(f) if is_aggregate(&f.name.to_string().to_lowercase()) => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

fn has_column_refs(e: &Expr) -> bool {
    matches!(e, Expr::Column { .. }) || e.children().into_iter().any(has_column_refs)
}

/// Binds an aggregate call, reusing an identical one; returns its post-aggregation column.
fn bind_aggregate(
    f: &ast::Function,
    input: &Scope<'_>,
    groups: usize,
    aggs: &mut Vec<AggSpec>,
) -> Result<Expr, SqlError> {
    let name = f.name.to_string().to_lowercase();
    // MIN and MAX of the distinct values are those of all values.
    let distinct = matches!(&f.args, ast::FunctionArguments::List(l)
        if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)))
        && !matches!(name.as_str(), "min" | "max");
    let star = matches!(&f.args, ast::FunctionArguments::List(l)
        if matches!(l.args.as_slice(), [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]));
    let spec = if star {
        if name != "count" || distinct {
            return Err(SqlError::Type(format!(
                "{name}({}*) is not valid; only COUNT(*)",
                if distinct { "DISTINCT " } else { "" }
            )));
        }
        AggSpec {
            func: AggFunc::CountStar,
            arg: None,
            ty: DataType::BigInt,
            distinct: false,
        }
    } else {
        let args = function_args(f)?;
        let [arg] = args.as_slice() else {
            return Err(SqlError::Type(format!("{name} takes exactly one argument")));
        };
        if contains_aggregate(arg) {
            return Err(SqlError::Type(format!(
                "aggregates cannot be nested: `{f}`"
            )));
        }
        let arg = bind(arg, input)?;
        let arg_ty = arg.ty();
        let (func, ty) = match (name.as_str(), arg_ty) {
            ("count", _) => (AggFunc::Count, DataType::BigInt),
            ("sum", Some(DataType::BigInt) | None) => (AggFunc::Sum, DataType::BigInt),
            ("sum", Some(DataType::Double)) => (AggFunc::Sum, DataType::Double),
            ("avg", Some(DataType::BigInt | DataType::Double) | None) => {
                (AggFunc::Avg, DataType::Double)
            }
            ("min", t) => (AggFunc::Min, t.unwrap_or(DataType::BigInt)),
            ("max", t) => (AggFunc::Max, t.unwrap_or(DataType::BigInt)),
            (_, t) => {
                return Err(SqlError::Type(format!(
                    "{name} needs a numeric argument, got {}",
                    t.map_or("NULL", DataType::sql_name)
                )))
            }
        };
        AggSpec {
            func,
            arg: Some(arg),
            ty,
            distinct,
        }
    };
    let ty = spec.ty;
    let index = match aggs.iter().position(|a| *a == spec) {
        Some(i) => i,
        None => {
            aggs.push(spec);
            aggs.len() - 1
        }
    };
    Ok(Expr::Column {
        index: groups + index,
        ty,
    })
}

/// Binds an expression evaluated after aggregation, over `[groups…, aggregates…]`.
fn bind_post_aggregate(
    e: &ast::Expr,
    input: &Scope<'_>,
    groups: &[Expr],
    aggs: &mut Vec<AggSpec>,
) -> Result<Expr, SqlError> {
    let post = Scope {
        object: input.object,
        columns: &[],
    };
    bind_with(e, &post, &mut |sub, _| {
        if let ast::Expr::Function(f) = sub {
            if is_aggregate(&f.name.to_string().to_lowercase()) {
                return bind_aggregate(f, input, groups.len(), aggs).map(Some);
            }
        }
        if contains_aggregate(sub) {
            return Ok(None);
        }
        let bound = bind(sub, input)?;
        if let Some(i) = groups.iter().position(|g| *g == bound) {
            return Ok(Some(Expr::Column {
                index: i,
                ty: bound.ty().unwrap_or(DataType::BigInt),
            }));
        }
        // tumble_end(ts, w) is derivable from a grouped tumble(ts, w).
        if let Expr::Tumble {
            ts,
            width_ms,
            end: true,
        } = &bound
        {
            let start = Expr::Tumble {
                ts: ts.clone(),
                width_ms: *width_ms,
                end: false,
            };
            if let Some(i) = groups.iter().position(|g| *g == start) {
                return Ok(Some(Expr::Binary {
                    op: BinOp::Add,
                    left: Box::new(Expr::Column {
                        index: i,
                        ty: DataType::Timestamp,
                    }),
                    right: Box::new(Expr::Literal(Value::Int(*width_ms))),
                    ty: Some(DataType::Timestamp),
                }));
            }
        }
        if !has_column_refs(&bound) {
            return Ok(Some(bound));
        }
        if matches!(
            sub,
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) | ast::Expr::Function(_)
        ) {
            return Err(SqlError::Type(format!(
                "`{sub}` must appear in GROUP BY or be used inside an aggregate"
            )));
        }
        Ok(None)
    })
}

/// The name of an unaliased output column.
fn column_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(id) => expr::ident_name(id),
        ast::Expr::CompoundIdentifier(parts) => {
            parts.last().map(expr::ident_name).unwrap_or_default()
        }
        other => other.to_string().to_lowercase(),
    }
}

/// Plans a SELECT over an input with columns `input`.
pub fn plan_select(query: &ast::Query, input: &Scope<'_>) -> Result<PlannedSelect, SqlError> {
    let (query, window) = windowed(query, input)?;
    let query = query.as_ref();
    let window_start_column = input.columns.len();
    let (window, session) = match window {
        None => (None, None),
        Some(QueryWindow::Expand(w)) => (Some(w), None),
        Some(QueryWindow::Session { ts, gap_ms }) => (None, Some((ts, gap_ms))),
    };
    // A window's start and end follow the input's columns.
    let mut windowed_columns = input.columns.to_vec();
    if window.is_some() || session.is_some() {
        for name in ["window_start", "window_end"] {
            if input.find(name).is_some() {
                return Err(SqlError::Type(format!(
                    "{} has a column named `{name}`, which a window adds; rename it",
                    input.object
                )));
            }
            windowed_columns.push((name.to_string(), DataType::Timestamp));
        }
    }
    let input = &Scope {
        object: input.object,
        columns: &windowed_columns,
    };
    let select = simple_select(query)?;
    if select.having.is_some()
        && matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
    {
        // HAVING without GROUP BY is a global aggregate; allowed below.
    }
    // Expand the projection, with names.
    let mut items: Vec<(String, ast::Expr)> = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => items.push((column_name(e), e.clone())),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                items.push((expr::ident_name(alias), expr.clone()))
            }
            ast::SelectItem::Wildcard(_) => {
                for (name, _) in input.columns {
                    items.push((name.clone(), ast::Expr::Identifier(ast::Ident::new(name))));
                }
            }
            other => return Err(SqlError::Unsupported(format!("select item `{other}`"))),
        }
    }
    let group_asts: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs
            .iter()
            .map(|g| resolve_output_reference(g, &items, input))
            .collect::<Result<_, _>>()?,
        _ => return Err(SqlError::Unsupported("GROUP BY ALL / ROLLUP / CUBE".into())),
    };
    let filter = match &select.selection {
        Some(w) => {
            if contains_aggregate(w) {
                return Err(SqlError::Type(
                    "aggregates are not allowed in WHERE; use HAVING".into(),
                ));
            }
            let f = bind(w, input)?;
            if !matches!(f.ty(), None | Some(DataType::Boolean)) {
                return Err(SqlError::Type(format!(
                    "WHERE needs a BOOLEAN condition, got {}",
                    f.ty().unwrap()
                )));
            }
            Some(f)
        }
        None => None,
    };
    let mut group_asts = group_asts;
    let aggregated = !group_asts.is_empty()
        || select.having.is_some()
        || items.iter().any(|(_, e)| contains_aggregate(e));
    let distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
    // DISTINCT without aggregates groups by every output column; over aggregated rows it
    // removes duplicate answers.
    if distinct && !aggregated {
        group_asts = items.iter().map(|(_, e)| e.clone()).collect();
    }
    let distinct_answers = distinct && aggregated;
    let aggregated = aggregated || distinct;
    if distinct && order_by_hidden(query, &items) {
        return Err(SqlError::Type(
            "with SELECT DISTINCT, ORDER BY expressions must appear in the select list".into(),
        ));
    }

    let mut columns = Vec::with_capacity(items.len());
    let (plan, order) = if aggregated {
        let groups = group_asts
            .iter()
            .map(|g| bind(g, input))
            .collect::<Result<Vec<_>, _>>()?;
        let mut aggs = Vec::new();
        let session = match session {
            None => None,
            Some((ts, gap_ms)) => {
                // The session's last timestamp, first among the aggregates (`window_end`
                // reads it, whether or not the query shows it).
                aggs.push(AggSpec {
                    func: AggFunc::Max,
                    arg: Some(ts.clone()),
                    ty: DataType::Timestamp,
                    distinct: false,
                });
                let start = groups
                    .iter()
                    .position(|g| g.as_column() == Some(window_start_column))
                    .expect("session_query checked that GROUP BY names window_start");
                Some(SessionWindow {
                    ts,
                    gap_ms,
                    start,
                    last: 0,
                })
            }
        };
        let mut output = Vec::with_capacity(items.len());
        for (name, e) in &items {
            let bound = bind_post_aggregate(e, input, &groups, &mut aggs)?;
            columns.push((name.clone(), bound.ty().unwrap_or(DataType::BigInt)));
            output.push(bound);
        }
        let having = match &select.having {
            Some(h) => Some(bind_post_aggregate(h, input, &groups, &mut aggs)?),
            None => None,
        };
        let order = plan_order(query, &columns, &mut output, |e| {
            bind_post_aggregate(e, input, &groups, &mut aggs)
        })?;
        (
            SelectPlan::Aggregate(AggPlan {
                filter,
                groups,
                aggs,
                having,
                output,
                window,
                session,
                multiplicity: None,
            }),
            order,
        )
    } else {
        let mut output = Vec::with_capacity(items.len());
        for (name, e) in &items {
            let bound = bind(e, input)?;
            columns.push((name.clone(), bound.ty().unwrap_or(DataType::BigInt)));
            output.push(bound);
        }
        let order = plan_order(query, &columns, &mut output, |e| bind(e, input))?;
        (
            SelectPlan::Project {
                window,
                filter,
                output,
            },
            order,
        )
    };
    let (limit, offset) = plan_limit(query)?;
    Ok(PlannedSelect {
        plan,
        columns,
        order,
        distinct: distinct_answers,
        limit,
        offset,
    })
}

/// Whether an ORDER BY key is neither an output column's name or position nor one of the
/// selected expressions.
fn order_by_hidden(query: &ast::Query, items: &[(String, ast::Expr)]) -> bool {
    let Some(ast::OrderByKind::Expressions(keys)) = query.order_by.as_ref().map(|o| &o.kind) else {
        return false;
    };
    keys.iter().any(|o| match &o.expr {
        ast::Expr::Identifier(id) if items.iter().any(|(n, _)| *n == expr::ident_name(id)) => false,
        ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => false,
        e => !items.iter().any(|(_, item)| item == e),
    })
}

/// GROUP BY may name an output alias or position; otherwise it is an input expression.
fn resolve_output_reference(
    g: &ast::Expr,
    items: &[(String, ast::Expr)],
    input: &Scope<'_>,
) -> Result<ast::Expr, SqlError> {
    match g {
        ast::Expr::Identifier(id) if input.find(&expr::ident_name(id)).is_none() => {
            let name = expr::ident_name(id);
            match items.iter().find(|(n, _)| *n == name) {
                Some((_, e)) if !contains_aggregate(e) => Ok(e.clone()),
                _ => Err(input.unknown_column(&name)),
            }
        }
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => {
                let pos: usize = n
                    .parse()
                    .map_err(|_| SqlError::Type(format!("invalid GROUP BY position {n}")))?;
                match items.get(pos.wrapping_sub(1)) {
                    Some((_, e)) => Ok(e.clone()),
                    None => Err(SqlError::Type(format!(
                        "GROUP BY position {pos} is not in the select list"
                    ))),
                }
            }
            _ => Ok(g.clone()),
        },
        _ => Ok(g.clone()),
    }
}

/// ORDER BY keys: an output column (by name or position) or an expression appended as a
/// hidden output column.
fn plan_order(
    query: &ast::Query,
    columns: &[(String, DataType)],
    output: &mut Vec<Expr>,
    mut bind_hidden: impl FnMut(&ast::Expr) -> Result<Expr, SqlError>,
) -> Result<Vec<(usize, bool, bool)>, SqlError> {
    let Some(order_by) = &query.order_by else {
        return Ok(vec![]);
    };
    let exprs = match &order_by.kind {
        ast::OrderByKind::Expressions(e) => e,
        ast::OrderByKind::All(_) => return Err(SqlError::Unsupported("ORDER BY ALL".into())),
    };
    let mut keys = Vec::with_capacity(exprs.len());
    for o in exprs {
        let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
        if let Some(ast::OrderBySort::Using(_)) = o.options.sort {
            return Err(SqlError::Unsupported("ORDER BY ... USING".into()));
        }
        // NULLs sort as the smallest value unless NULLS FIRST/LAST says otherwise.
        let nulls_first = o.options.nulls_first.unwrap_or(!desc);
        let by_name = match &o.expr {
            ast::Expr::Identifier(id) => {
                columns.iter().position(|(n, _)| *n == expr::ident_name(id))
            }
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => {
                    let pos: usize = n
                        .parse()
                        .map_err(|_| SqlError::Type(format!("invalid ORDER BY position {n}")))?;
                    if pos == 0 || pos > columns.len() {
                        return Err(SqlError::Type(format!(
                            "ORDER BY position {pos} is not in the select list"
                        )));
                    }
                    Some(pos - 1)
                }
                _ => None,
            },
            _ => None,
        };
        let index = match by_name {
            Some(i) => i,
            None => {
                output.push(bind_hidden(&o.expr)?);
                output.len() - 1
            }
        };
        keys.push((index, desc, nulls_first));
    }
    Ok(keys)
}

fn plan_limit(query: &ast::Query) -> Result<(Option<usize>, usize), SqlError> {
    let count = |e: &ast::Expr, what: &str| -> Result<usize, SqlError> {
        match expr::eval_constant(e) {
            Ok(Value::Int(n)) if n >= 0 => Ok(n as usize),
            _ => Err(SqlError::Type(format!(
                "{what} needs a non-negative integer, got `{}`",
                expr::excerpt(&e.to_string())
            ))),
        }
    };
    match &query.limit_clause {
        None => Ok((None, 0)),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(SqlError::Unsupported("LIMIT BY".into()));
            }
            let limit = limit.as_ref().map(|l| count(l, "LIMIT")).transpose()?;
            let offset = offset
                .as_ref()
                .map(|o| count(&o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            Ok((limit, offset))
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
            Ok((Some(count(limit, "LIMIT")?), count(offset, "OFFSET")?))
        }
    }
}

/// The state of a view without aggregates (`SELECT exprs FROM src [WHERE …]`): its rows
/// accumulate, kept once per distinct row with a hidden `COUNT(*)` (the multiplicity), so
/// that every tier stores, checkpoints, shards and recovers them as it does any group.
pub(crate) fn multiset_of(
    window: Option<Windowing>,
    filter: Option<Expr>,
    output: Vec<Expr>,
) -> AggPlan {
    let columns = output.len();
    AggPlan {
        filter,
        output: output
            .iter()
            .enumerate()
            .map(|(index, e)| Expr::Column {
                index,
                ty: e.ty().unwrap_or(DataType::BigInt),
            })
            .collect(),
        groups: output,
        aggs: vec![AggSpec {
            func: AggFunc::CountStar,
            arg: None,
            ty: DataType::BigInt,
            distinct: false,
        }],
        having: None,
        window,
        session: None,
        multiplicity: Some(columns),
    }
}
