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
use diesel::connection::{
    AnsiTransactionManager, Connection, Instrumentation, InstrumentationEvent, SimpleConnection,
    TransactionManager,
};
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
    /// Whether the text may be kept at all (see [`Statement::new`]).
    keep: bool,
    /// Whether it is kept: asked of [`admit`] once, when first needed, so that the parts
    /// of a [`Statement::union_all`] never take a slot of their own.
    cache: Option<bool>,
}

impl Statement {
    /// A statement kept prepared once [`admit`] lets its text in.
    pub fn new(sql: &str) -> Self {
        Statement {
            keep: true,
            ..Self::unprepared(sql)
        }
    }

    /// A statement never kept prepared, planned with its values on every execution.
    pub fn unprepared(sql: &str) -> Self {
        Statement {
            pieces: split(sql),
            binds: Vec::new(),
            keep: false,
            cache: None,
        }
    }

    /// Binds the next value (`$1` first).
    pub fn bind(mut self, value: Bind) -> Self {
        self.binds.push(value);
        self
    }

    /// The statement with `before` and `after` around its text (which must not hold
    /// placeholders).
    pub fn wrapped(mut self, before: &str, after: &str) -> Self {
        if let Some(first) = self.pieces.first_mut() {
            first.0.insert_str(0, before);
        }
        if let Some(last) = self.pieces.last_mut() {
            last.0.push_str(after);
        }
        self.cache = None;
        self
    }

    /// One statement of `parts` joined by `UNION ALL`, their placeholders renumbered:
    /// kept when every part may be, as one text.
    pub fn union_all(parts: Vec<Statement>) -> Option<Statement> {
        let keep = parts.iter().all(|p| p.keep);
        let mut pieces: Vec<(String, Option<usize>)> = Vec::new();
        let mut binds = Vec::new();
        for part in parts {
            let offset = binds.len();
            for (i, (text, b)) in part.pieces.into_iter().enumerate() {
                let b = b.map(|b| b + offset);
                match pieces.last_mut() {
                    // A part's first text follows the last text so far, which has no
                    // value after it (every statement's last piece has none).
                    Some(last) if i == 0 => {
                        last.0.push_str("\n UNION ALL\n ");
                        last.0.push_str(&text);
                        last.1 = b;
                    }
                    _ => pieces.push((text, b)),
                }
            }
            binds.extend(part.binds);
        }
        (!pieces.is_empty()).then_some(Statement {
            pieces,
            binds,
            keep,
            cache: None,
        })
    }

    /// The statement never kept prepared (Citus cannot plan some kept texts generically,
    /// and a session's automatic mode may choose the generic plan after a few runs).
    pub fn unkept(self) -> Self {
        Statement {
            keep: false,
            cache: None,
            ..self
        }
    }

    /// Whether the statement is kept prepared already, without counting this as a
    /// sighting of its text (see [`admit`]).
    pub fn was_kept(&self) -> bool {
        self.cache
            .unwrap_or_else(|| self.keep && admitted(text_key_of(&self.pieces)))
    }

    /// Whether the statement is kept prepared (asking [`admit`] the first time).
    pub fn is_kept(&mut self) -> bool {
        *self
            .cache
            .get_or_insert_with(|| self.keep && admit(text_key_of(&self.pieces)))
    }

    /// Runs the statement and reads its rows, switching the transaction's plan mode
    /// first if [`read_snapshot`] runs it and the mode does not suit it.
    pub fn load<U>(mut self, conn: &mut PgConnection) -> QueryResult<Vec<U>>
    where
        U: QueryableByName<Pg> + 'static,
    {
        let kept = self.is_kept();
        GENERIC_PLANS.with(|mode| -> QueryResult<()> {
            match mode.get() {
                Some(generic) if generic != kept => {
                    conn.batch_execute(if kept { GENERIC } else { CUSTOM })?;
                    mode.set(Some(kept));
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
/// Custom plans for every statement, kept ones included.
const ALWAYS_CUSTOM: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// The session settings of a query pool's connections ([`super::build_query_pool`]):
/// kept statements on their generic plans without parallel workers, as [`GENERIC`] sets
/// them in a transaction. Statements not kept run on such a connection inside
/// [`read_snapshot`], whose `SET LOCAL` puts custom plans and workers back.
pub const GENERIC_SESSION: &str =
    "SET plan_cache_mode = force_generic_plan; SET max_parallel_workers_per_gather = 0;";

/// The mark of a connection whose session is set up with [`GENERIC_SESSION`]: diesel
/// keeps one instrumentation per connection, which is where a connection can carry it.
struct GenericSession;

impl Instrumentation for GenericSession {
    fn on_connection_event(&mut self, _event: InstrumentationEvent<'_>) {}
}

/// Marks `conn` as set up with [`GENERIC_SESSION`].
pub fn mark_generic_session(conn: &mut PgConnection) {
    conn.set_instrumentation(GenericSession);
}

/// Whether `conn`'s session plans kept statements generically ([`GENERIC_SESSION`]).
pub fn generic_session(conn: &mut PgConnection) -> bool {
    conn.instrumentation().is::<GenericSession>()
}

/// Runs `statement` alone, outside any transaction, when the connection's session plans
/// it as it should be (kept: generic, on a query pool's connection; not kept: with its
/// values, on any other): one round trip. Otherwise in a transaction that sets the plan
/// mode around it ([`read_snapshot`]).
pub fn load_alone<U>(conn: &mut PgConnection, mut statement: Statement) -> QueryResult<Vec<U>>
where
    U: QueryableByName<Pg> + 'static,
{
    let kept = statement.is_kept();
    if kept == generic_session(conn) {
        return statement.load(conn);
    }
    let plans = if kept { Plans::Generic } else { Plans::Custom };
    read_snapshot(conn, plans, |conn| statement.load(conn))
}

/// How [`read_snapshot`] plans the statements it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// Kept statements on their generic plans, the others on custom plans; starts in
    /// the generic mode (when kept statements are expected).
    Generic,
    /// As `Generic`, starting in the custom mode.
    Custom,
    /// Every statement planned with its values. Citus cannot make a distributed plan of
    /// a generic `UNION ALL` over its shards, so its kept statements are planned anew
    /// too: they still save the parse.
    AlwaysCustom,
}

impl Plans {
    /// The plans for a transaction on `engine` that expects kept statements when
    /// `kept_first`.
    pub fn on(engine: super::maintenance::StorageMode, kept_first: bool) -> Plans {
        match engine {
            super::maintenance::StorageMode::Citus => Plans::AlwaysCustom,
            _ if kept_first => Plans::Generic,
            _ => Plans::Custom,
        }
    }
}

thread_local! {
    /// Inside [`read_snapshot`] (which runs on one thread from start to end): whether
    /// its transaction runs prepared statements on generic plans now; `None` outside it,
    /// and inside it with [`Plans::AlwaysCustom`] (no switching).
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
/// see one snapshot, planned as `plans` says (see the module).
pub fn read_snapshot<T, E>(
    conn: &mut PgConnection,
    plans: Plans,
    f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let (mode, generic) = match plans {
        Plans::Generic => (GENERIC, Some(true)),
        Plans::Custom => (CUSTOM, Some(false)),
        // No switching: every statement stays on custom plans.
        Plans::AlwaysCustom => (ALWAYS_CUSTOM, None),
    };
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
    let _mode = PlanMode(GENERIC_PLANS.with(|m| m.replace(generic)));
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
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    // Where the current piece's text starts; `$` and digits are ASCII, so every index
    // below is a character boundary.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let end = bytes[i + 1..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |p| i + 1 + p);
        if let Some(n) = sql[i + 1..end].parse::<usize>().ok().filter(|&n| n > 0) {
            pieces.push((sql[start..i].to_string(), Some(n - 1)));
            start = end;
        }
        i = end.max(i + 1);
    }
    pieces.push((sql[start..].to_string(), None));
    pieces
}

/// The admitted texts and those seen once, by [`text_key_of`].
static TEXTS: Mutex<Option<(HashSet<u64>, HashSet<u64>)>> = Mutex::new(None);

/// A statement text's key: the hash of its pieces and placeholders.
fn text_key_of(pieces: &[(String, Option<usize>)]) -> u64 {
    let mut h = DefaultHasher::new();
    pieces.hash(&mut h);
    h.finish()
}

/// Whether the text of `key` is one of the admitted texts (asking does not count as a
/// sighting).
fn admitted(key: u64) -> bool {
    TEXTS
        .lock()
        .ok()
        .and_then(|guard| guard.as_ref().map(|(admitted, _)| admitted.contains(&key)))
        .unwrap_or(false)
}

/// Whether the text of `key` may be kept prepared: it is one of the admitted texts, or is seen for
/// the second time while there is room.
fn admit(key: u64) -> bool {
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
        if this.cache != Some(true) {
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
