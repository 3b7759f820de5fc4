//! Writing points, inside the caller's transaction: rows of sessions the transaction
//! created are `COPY`ed straight into `points`; others go through the per-connection
//! staging table and one `INSERT ... ON CONFLICT`.

use super::schema::{points, points_staging};
use chrono::{DateTime, Utc};
use diesel::pg::{CopyFormat, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Timestamptz};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use uuid::Uuid;

/// Created once per pooled connection. `ON COMMIT DELETE ROWS` empties it at every
/// commit, so a batch never sees another's rows.
pub const STAGING_TABLE_DDL: &str = "
    CREATE TEMP TABLE IF NOT EXISTS points_staging (
        user_id      uuid NOT NULL,
        series_id    integer NOT NULL,
        time         timestamptz NOT NULL,
        session_id   uuid NOT NULL,
        num          double precision NULL,
        fields       text[] NULL,
        field_values double precision[] NULL,
        value        json NOT NULL,
        job          integer NOT NULL
    ) ON COMMIT DELETE ROWS;";

/// The identity of a point: (user, series, time, session).
pub type PointKey = (Uuid, i32, DateTime<Utc>, Uuid);

/// One point ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub user_id: Uuid,
    pub series_id: i32,
    pub time: DateTime<Utc>,
    pub session_id: Uuid,
    pub num: Option<f64>,
    /// Other numeric fields of an object value, sorted by name.
    pub fields: Vec<(String, f64)>,
    /// The JSON exactly as sent.
    pub value: String,
}

impl PointRow {
    /// The identity of a point: one row per (user, series, time, session).
    pub fn key(&self) -> PointKey {
        (self.user_id, self.series_id, self.time, self.session_id)
    }
}

/// Appends `s` to `out` escaped for COPY's text format.
fn copy_escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// A PostgreSQL array literal of quoted text elements.
fn text_array_literal(items: &[(String, f64)]) -> String {
    let mut s = String::from("{");
    for (i, (name, _)) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Encodes rows in COPY text format: the columns of `points`, then (for the staging
/// table) the index of the job each row belongs to when `with_job`.
pub fn encode_copy_text<'a, I>(rows: I, with_job: bool) -> Vec<u8>
where
    I: IntoIterator<Item = (i32, &'a PointRow)>,
{
    let mut out = Vec::with_capacity(4096);
    for (job, r) in rows {
        let _ = write!(
            out,
            "{}\t{}\t{}\t{}\t",
            r.user_id,
            r.series_id,
            r.time.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            r.session_id
        );
        match r.num {
            Some(n) => {
                let _ = write!(out, "{n:?}\t");
            }
            None => out.extend_from_slice(b"\\N\t"),
        }
        if r.fields.is_empty() {
            out.extend_from_slice(b"\\N\t\\N\t");
        } else {
            copy_escape(&mut out, &text_array_literal(&r.fields));
            out.push(b'\t');
            out.push(b'{');
            for (i, (_, v)) in r.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "{v:?}");
            }
            out.extend_from_slice(b"}\t");
        }
        copy_escape(&mut out, &r.value);
        if with_job {
            let _ = write!(out, "\t{job}");
        }
        out.push(b'\n');
    }
    out
}

/// Inserts the rows of sessions created by the caller's transaction with one `COPY`
/// into `points` (no staging, no conflict handling): a point's key includes its session,
/// every stored point's session has a row in `sessions` (ingest creates it first, session
/// deletion removes it last), and the caller holds the sessions' locks, so no stored key
/// can equal one of these. `rows` must hold each key once. Every row counts as inserted.
pub fn insert_new<'a, I>(conn: &mut PgConnection, rows: I) -> QueryResult<UpsertCounts>
where
    I: IntoIterator<Item = (i32, &'a PointRow)>,
{
    let mut counts = UpsertCounts::default();
    let rows = rows.into_iter().inspect(|(job, _)| {
        *counts.inserted.entry(*job).or_default() += 1;
    });
    let data = encode_copy_text(rows, false);
    if data.is_empty() {
        return Ok(counts);
    }
    copy_raw(conn, points::table, &data)?;
    Ok(counts)
}

/// `COPY table FROM STDIN` (text format, every column) of already encoded rows.
fn copy_raw<T>(conn: &mut PgConnection, table: T, data: &[u8]) -> QueryResult<usize>
where
    T: diesel::Table + diesel::pg::CopyTarget<Table = T> + Copy,
{
    diesel::copy_from(table)
        .from_raw_data(table, |w: &mut dyn Write| {
            w.write_all(data)
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
        })
        .with_format(CopyFormat::Text)
        .execute(conn)
}

/// How many rows of one job a statement touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct JobCount {
    #[diesel(sql_type = Integer)]
    pub job: i32,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(QueryableByName)]
struct SessionCount {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    session_id: Uuid,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What the upsert did, per job.
#[derive(Debug, Default)]
pub struct UpsertCounts {
    pub inserted: HashMap<i32, usize>,
    pub updated: HashMap<i32, usize>,
}

/// How [`upsert`] updates the rows that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Every user's rows in one statement (one PostgreSQL server).
    Together,
    /// One statement per user, naming the user, so that Citus routes each to the user's
    /// shard (joined with the staging table alone, it would run on every shard).
    PerUser,
}

/// COPYs `rows` into the staging table and upserts them into `points`: a new key is
/// inserted, an existing key with a different value is replaced (last write wins), an
/// identical one is left alone. Must run inside a transaction; `rows` must hold each key
/// once, and concurrent writers of the same key must be serialised by the caller (ingest
/// holds the session's advisory lock, and a key includes the session).
pub fn upsert<'a, I>(
    conn: &mut PgConnection,
    rows: I,
    routing: Routing,
) -> QueryResult<UpsertCounts>
where
    I: IntoIterator<Item = (i32, &'a PointRow)>,
{
    let mut total = 0usize;
    let mut users: BTreeSet<Uuid> = BTreeSet::new();
    let mut first: Option<DateTime<Utc>> = None;
    let mut last: Option<DateTime<Utc>> = None;
    // The job of each session; `None` once two jobs of the batch share a session.
    let mut job_of_session: HashMap<Uuid, Option<i32>> = HashMap::new();
    let rows = rows.into_iter().inspect(|(job, r)| {
        total += 1;
        users.insert(r.user_id);
        first = Some(first.map_or(r.time, |f| f.min(r.time)));
        last = Some(last.map_or(r.time, |l| l.max(r.time)));
        let entry = job_of_session.entry(r.session_id).or_insert(Some(*job));
        if *entry != Some(*job) {
            *entry = None;
        }
    });
    let data = encode_copy_text(rows, true);
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(UpsertCounts::default());
    };
    copy_raw(conn, points_staging::table, &data)?;
    // PostgreSQL cannot tell inserted from updated rows of a partitioned table in one
    // statement (no xmax there), so: insert the new keys, then update the changed ones.
    // Rows need no particular order: writers of one key hold its session's lock.
    const INSERT: &str = "INSERT INTO points
                (user_id, series_id, time, session_id, num, fields, field_values, value)
            SELECT user_id, series_id, time, session_id, num, fields, field_values, value
            FROM points_staging
            ON CONFLICT (user_id, series_id, time, session_id) DO NOTHING";
    let inserted: Vec<JobCount> = if job_of_session.values().all(Option::is_some) {
        // Each session belongs to one job: count per session, no join back to staging.
        let per_session: Vec<SessionCount> = diesel::sql_query(format!(
            "WITH ins AS ({INSERT} RETURNING session_id)
             SELECT session_id, count(*) AS n FROM ins GROUP BY session_id"
        ))
        .load(conn)?;
        per_session
            .into_iter()
            .filter_map(|c| {
                job_of_session
                    .get(&c.session_id)
                    .copied()
                    .flatten()
                    .map(|job| JobCount { job, n: c.n })
            })
            .collect()
    } else {
        diesel::sql_query(format!(
            "WITH ins AS ({INSERT} RETURNING user_id, series_id, time, session_id)
             SELECT s.job, count(*) AS n
             FROM ins JOIN points_staging s USING (user_id, series_id, time, session_id)
             GROUP BY s.job"
        ))
        .load(conn)?
    };
    let mut counts = UpsertCounts {
        inserted: inserted.iter().fold(HashMap::new(), |mut m, c| {
            *m.entry(c.job).or_default() += c.n as usize;
            m
        }),
        ..UpsertCounts::default()
    };
    if counts.inserted.values().sum::<usize>() == total {
        return Ok(counts);
    }
    let users: Vec<Option<Uuid>> = match routing {
        Routing::Together => vec![None],
        Routing::PerUser => users.into_iter().map(Some).collect(),
    };
    let mut updated: Vec<JobCount> = Vec::new();
    for user in users {
        let route = if user.is_some() {
            " AND p.user_id = $3 AND s.user_id = $3"
        } else {
            ""
        };
        let q = diesel::sql_query(format!(
            "WITH upd AS (
                UPDATE points p
                SET num = s.num, fields = s.fields, field_values = s.field_values, value = s.value
                FROM points_staging s
                WHERE p.user_id = s.user_id AND p.series_id = s.series_id
                  AND p.time = s.time AND p.session_id = s.session_id
                  AND p.time BETWEEN $1 AND $2{route}
                  AND p.value::text IS DISTINCT FROM s.value::text
                RETURNING s.job
             )
             SELECT job, count(*) AS n FROM upd GROUP BY job"
        ))
        .into_boxed::<diesel::pg::Pg>()
        .bind::<Timestamptz, _>(first)
        .bind::<Timestamptz, _>(last);
        let q = match user {
            Some(user) => q.bind::<diesel::sql_types::Uuid, _>(user),
            None => q,
        };
        updated.extend(q.load::<JobCount>(conn)?);
    }
    counts.updated = updated.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.job).or_default() += c.n as usize;
        m
    });
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_everything_that_matters() {
        let row = PointRow {
            user_id: Uuid::nil(),
            series_id: 7,
            time: DateTime::<Utc>::UNIX_EPOCH,
            session_id: Uuid::nil(),
            num: None,
            fields: vec![("a\"b".into(), 1.5), ("c".into(), -2.0)],
            value: "{\"a\\\"b\":1.5,\n\"c\":-2.0,\"t\":\"x\\ty\"}".into(),
        };
        let text = String::from_utf8(encode_copy_text([(3, &row)], true)).unwrap();
        let columns = "00000000-0000-0000-0000-000000000000\t7\t1970-01-01T00:00:00.000000Z\t\
             00000000-0000-0000-0000-000000000000\t\\N\t{\"a\\\\\"b\",\"c\"}\t{1.5,-2.0}\t\
             {\"a\\\\\"b\":1.5,\\n\"c\":-2.0,\"t\":\"x\\\\ty\"}";
        assert_eq!(text, format!("{columns}\t3\n"));
        // Straight into `points`: no job column.
        let text = String::from_utf8(encode_copy_text([(3, &row)], false)).unwrap();
        assert_eq!(text, format!("{columns}\n"));
    }
}
