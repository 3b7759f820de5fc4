//! TimescaleDB's native compression of old weeks of `points` (`COMPRESS_AFTER_WEEKS`).
//!
//! Chunks are compressed segmented by user and ordered by time, series and session:
//! one user's points of a week lie in one segment, whatever their series, so a sparse
//! series' few points a week still compress along with the others' (segmenting by series
//! too would make batches of a handful of rows); in time order a session's points lie
//! together, so its id repeats and compresses (ordered by series first, the id changed
//! on nearly every row: 56 bytes a point against 50 on the seed's data shape). Reads need nothing: TimescaleDB
//! decompresses what a statement touches, and a user's query reaches that user's
//! segments only. Writes, rewrites and deletions of points in compressed weeks work as
//! in others (TimescaleDB decompresses the segments they touch; the next run compresses
//! the chunk again).

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamptz};

/// How `points` is compressed: segments by user, ordered within by time, series and
/// session.
pub const SETTINGS: &str = "timescaledb.compress, \
     timescaledb.compress_segmentby = 'user_id', \
     timescaledb.compress_orderby = 'time, series_id, session_id'";

/// Most chunks one run compresses (each in its own transaction), so a run after a long
/// pause, or after a bulk load of history, stays short; the next runs go on.
pub const CHUNKS_PER_RUN: usize = 8;

/// Turns compression on for `points` if it is not (idempotent).
pub fn enable(conn: &mut PgConnection) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Enabled {
        #[diesel(sql_type = Bool)]
        enabled: bool,
    }
    let on: Vec<Enabled> = diesel::sql_query(
        "SELECT compression_enabled AS enabled FROM timescaledb_information.hypertables
         WHERE hypertable_name = 'points'",
    )
    .load(conn)?;
    if on.iter().any(|e| e.enabled) {
        return Ok(());
    }
    conn.batch_execute(&format!("ALTER TABLE points SET ({SETTINGS})"))
}

/// Compresses the chunks of `points` that end before `cutoff` and are not compressed
/// (or were written to since), at most [`CHUNKS_PER_RUN`]; returns their names.
pub fn compress_before(
    conn: &mut PgConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Chunk {
        #[diesel(sql_type = Text)]
        name: String,
    }
    enable(conn)?;
    // A chunk written to since its compression is partially compressed (status bit 8;
    // `is_compressed` stays true): compressing it again folds the new rows in.
    let chunks: Vec<Chunk> = diesel::sql_query(
        "SELECT format('%I.%I', c.chunk_schema, c.chunk_name) AS name
         FROM timescaledb_information.chunks c
         JOIN _timescaledb_catalog.chunk k
           ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
         WHERE c.hypertable_name = 'points' AND c.range_end <= $1
           AND (NOT c.is_compressed OR k.status & 8 <> 0)
         ORDER BY c.range_start LIMIT $2",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<diesel::sql_types::BigInt, _>(CHUNKS_PER_RUN as i64)
    .load(conn)?;
    let mut done = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        // A week of many users' points may take longer than `DB_STATEMENT_TIMEOUT_MS`:
        // without lifting it the same oldest chunk would fail every run, and no later
        // one would ever be compressed.
        conn.transaction(|conn| {
            conn.batch_execute("SET LOCAL statement_timeout = 0")?;
            diesel::sql_query("SELECT compress_chunk($1::regclass, if_not_compressed => true)")
                .bind::<Text, _>(&chunk.name)
                .execute(conn)
        })?;
        done.push(chunk.name);
    }
    Ok(done)
}
