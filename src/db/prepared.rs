//! SQL written at run time, sent so that the connection keeps it as a prepared statement.
//!
//! Diesel prepares and keeps (per connection, for the connection's life) every statement
//! of its query builder, but never one from `sql_query`, whose text can be anything. The
//! rollup plans are built at run time (one branch per span of months, days, hours and raw
//! points), yet a handful of texts serve nearly every request, and parsing and planning
//! one is a third of a day-level request. [`Statement`] marks its text safe to cache when
//! the process-wide [`admit`] lets it: a text is admitted on its second sighting, and at
//! most [`MAX_TEXTS`] texts ever are, so no connection holds more than that many of
//! these statements however varied the queries.
//!
//! Kept, a statement is still planned again on every execution with its values (a
//! custom plan): PostgreSQL keeps to custom plans while they look cheaper than its
//! generic one, and planning, mostly pruning the weekly partitions of `points` for the
//! raw branches, is most of a day-level statement's cost. Inside [`read_snapshot`], kept
//! statements run on their generic plan (planned once per connection; partitions are
//! pruned at execution from the bound values), and every other statement (a text not
//! admitted, or one made with [`Statement::unprepared`]: the raw path's scans over
//! years of points, whose plans depend on the values) on custom plans as usual.

use chrono::{DateTime, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::deserialize::QueryableByName;
use diesel::pg::data_types::PgInterval;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Integer, Interval, Text, Timestamptz, Untyped, Uuid as SqlUuid};
use diesel::{QueryResult, RunQueryDsl};
use std::cell::Cell;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use uuid::Uuid;

/// The most statement texts a process admits. A kept generic plan is large on the
/// PostgreSQL side (~2 MB per connection for a plan with two raw branches over two years
/// of weekly partitions), so this bounds that memory too: a handful of texts serve the
/// usual query shapes, and texts past the bound run as before, planned each time.
pub const MAX_TEXTS: usize = 16;
/// The most texts remembered as seen once (the set is cleared when full).
const MAX_SEEN: usize = 64 * MAX_TEXTS;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Bind {
    Uuid(Uuid),
    Ints(Vec<i32>),
    Text(String),
    Time(DateTime<Utc>),
    Interval(PgInterval),
}

/// A statement whose text refers to its values as `$1`, `$2`, ... (each any number of
/// times), bound in that order.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The text between placeholders, and after each piece the index (from 0) of the
    /// value that follows it, if any.
    pieces: Vec<(String, Option<usize>)>,
    binds: Vec<Bind>,
    cache: bool,
}

impl Statement {
    /// A statement kept prepared once [`admit`] lets its text in.
    pub fn new(sql: &str) -> Self {
        Statement {
            cache: admit(sql),
            ..Self::unprepared(sql)
        }
    }

    /// A statement never kept prepared, planned with its values on every execution.
    pub fn unprepared(sql: &str) -> Self {
        Statement {
            pieces: split(sql),
            binds: Vec::new(),
            cache: false,
        }
    }

    /// Binds the next value (`$1` first).
    pub fn bind(mut self, value: Bind) -> Self {
        self.binds.push(value);
        self
    }

    /// Runs the statement and reads its rows, switching the transaction's plan mode
    /// first if [`read_snapshot`] runs it and the mode does not suit it.
    pub fn load<U>(self, conn: &mut PgConnection) -> QueryResult<Vec<U>>
    where
        U: QueryableByName<Pg> + 'static,
    {
        GENERIC_PLANS.with(|mode| -> QueryResult<()> {
            match mode.get() {
                Some(generic) if generic != self.cache => {
                    conn.batch_execute(if self.cache { GENERIC } else { CUSTOM })?;
                    mode.set(Some(self.cache));
                    Ok(())
                }
                _ => Ok(()),
            }
        })?;
        RunQueryDsl::load(Run(self), conn)
    }
}

/// A [`Statement`] being run: only [`Statement::load`] runs one, so that no statement
/// bypasses the plan mode switch.
struct Run(Statement);

/// Generic plans, without parallel workers: a generic plan cannot tell an hour of
/// points from two years, and starting workers costs more than a day-level statement.
const GENERIC: &str =
    "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL max_parallel_workers_per_gather = 0";
/// PostgreSQL's defaults back: custom plans, workers where they pay.
const CUSTOM: &str =
    "SET LOCAL plan_cache_mode = DEFAULT; SET LOCAL max_parallel_workers_per_gather = DEFAULT";

thread_local! {
    /// Inside [`read_snapshot`] (which runs on one thread from start to end): whether
    /// its transaction runs prepared statements on generic plans now.
    static GENERIC_PLANS: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Puts [`GENERIC_PLANS`] back as it was however [`read_snapshot`] ends.
struct PlanMode(Option<bool>);

impl Drop for PlanMode {
    fn drop(&mut self) {
        GENERIC_PLANS.with(|mode| mode.set(self.0));
    }
}

/// Runs `f` in one read-only repeatable-read transaction, so that all its statements
/// see one snapshot, with kept statements on their generic plans (see the module);
/// `generic`: start in that mode (when kept statements are expected), else in
/// PostgreSQL's default one.
pub fn read_snapshot<T, E>(
    conn: &mut PgConnection,
    generic: bool,
    f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let mode = if generic { GENERIC } else { CUSTOM };
    let begin = format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {mode}");
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(conn, &begin) {
        // The server ran BEGIN, then a later statement failed: never hand the pool a
        // connection inside a transaction diesel does not know of. (Other errors come
        // before anything is sent, e.g. a transaction diesel already has open.)
        if matches!(e, diesel::result::Error::DatabaseError(..)) {
            let _ = conn.batch_execute("ROLLBACK");
        }
        return Err(e.into());
    }
    let _mode = PlanMode(GENERIC_PLANS.with(|m| m.replace(Some(generic))));
    match f(conn) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // As diesel's own transactions: the error that ended the work is the one
            // reported (a connection left in a transaction is dropped by the pool).
            let _ = AnsiTransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// Splits `sql` at its `$n` placeholders.
fn split(sql: &str) -> Vec<(String, Option<usize>)> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let mut digits = String::new();
        if c == '$' {
            while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                digits.push(d);
            }
        }
        match digits.parse::<usize>() {
            Ok(n) if n > 0 => pieces.push((std::mem::take(&mut text), Some(n - 1))),
            _ => {
                text.push(c);
                text.push_str(&digits);
            }
        }
    }
    pieces.push((text, None));
    pieces
}

/// Whether `sql` may be kept prepared: it is one of the admitted texts, or is seen for
/// the second time while there is room.
fn admit(sql: &str) -> bool {
    static TEXTS: Mutex<Option<(HashSet<u64>, HashSet<u64>)>> = Mutex::new(None);
    let mut h = DefaultHasher::new();
    sql.hash(&mut h);
    let key = h.finish();
    let Ok(mut guard) = TEXTS.lock() else {
        return false;
    };
    let (admitted, seen) = guard.get_or_insert_with(Default::default);
    if admitted.contains(&key) {
        return true;
    }
    if admitted.len() >= MAX_TEXTS {
        return false;
    }
    if seen.remove(&key) {
        admitted.insert(key);
        return true;
    }
    if seen.len() >= MAX_SEEN {
        seen.clear();
    }
    seen.insert(key);
    false
}

impl QueryId for Run {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Run {
    type SqlType = Untyped;
}

impl RunQueryDsl<PgConnection> for Run {}

impl QueryFragment<Pg> for Run {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let Run(this) = self;
        if !this.cache {
            out.unsafe_to_cache_prepared();
        }
        for (text, bind) in &this.pieces {
            out.push_sql(text);
            let Some(i) = bind else { continue };
            match this.binds.get(*i) {
                Some(Bind::Uuid(v)) => out.push_bind_param::<SqlUuid, _>(v)?,
                Some(Bind::Ints(v)) => out.push_bind_param::<Array<Integer>, _>(v)?,
                Some(Bind::Text(v)) => out.push_bind_param::<Text, _>(v)?,
                Some(Bind::Time(v)) => out.push_bind_param::<Timestamptz, _>(v)?,
                Some(Bind::Interval(v)) => out.push_bind_param::<Interval, _>(v)?,
                None => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("no value bound for ${}", i + 1).into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_every_placeholder_and_keeps_other_dollars() {
        let pieces = split("a = $1 AND b = ANY($12) OR c = $1 || '$x' || $0");
        let binds: Vec<Option<usize>> = pieces.iter().map(|p| p.1).collect();
        assert_eq!(binds, vec![Some(0), Some(11), Some(0), None]);
        let text: String = pieces.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(text, "a =  AND b = ANY() OR c =  || '$x' || $0");
    }
}
