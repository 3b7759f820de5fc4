//! The vacuum of the tables the rollup job churns, run by a job of its own and only on
//! tables with enough dead rows.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};

/// The tables the rollup job deletes from on every run, vacuumed by [`vacuum`].
pub(super) const CHURNED: [&str; 7] = [
    "rollup_invalidations",
    "rollup_hourly",
    "rollup_values_hourly",
    "rollup_daily",
    "rollup_values_daily",
    "rollup_monthly",
    "rollup_values_monthly",
];

/// A churned table is vacuumed once its dead rows reach this many plus a tenth of its
/// live ones (autovacuum's rule, with 50 and a fifth by default).
pub const VACUUM_DEAD_ROWS: i64 = 1000;

/// Vacuums those of the invalidation log and the rollup tables that hold enough dead
/// rows (see [`VACUUM_DEAD_ROWS`]; the `rollup-vacuum` job) and returns their names. The
/// rollup job deletes their rows at every run (the invalidations it took; the current
/// hours, days and months it recomputed), and their dead versions stay in the way of
/// every query's index scans until a vacuum: after a bulk load's catch-up, millions of
/// dead invalidations made the check for hours awaiting refresh read hundreds of index
/// pages per query. Autovacuum would see to it where it is on, after a while; the service
/// does not depend on it. Tables with few dead rows are left alone: vacuuming all seven
/// every minute under a mixed load (millions of hourly rows, a few thousand dead) took a
/// core for about a second, and the queries of that second made the load's slowest
/// percent. Lazy vacuum blocks neither reads nor writes. It runs without the statement
/// timeout (a vacuum cut short would start over, and be cut short again); call outside
/// a transaction.
pub fn vacuum(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Text)]
        relname: String,
    }
    // On Citus the coordinator's tables are empty shells: the rows, live and dead, are
    // counted on every node's shards (`<table>_<shard id>`), and a `VACUUM` there goes on
    // to every shard.
    let counts = if crate::db::maintenance::is_citus(conn)? {
        "SELECT split_part(e, ' ', 1) AS relname,
                sum(split_part(e, ' ', 2)::bigint) AS dead,
                sum(split_part(e, ' ', 3)::bigint) AS live
         FROM run_command_on_all_nodes($$
             SELECT string_agg(regexp_replace(relname, '_[0-9]+$', '')
                               || ' ' || n_dead_tup || ' ' || n_live_tup, ',')
             FROM pg_stat_user_tables WHERE relname ~ '^rollup_[a-z_]+_[0-9]+$'$$) AS c
         CROSS JOIN LATERAL unnest(string_to_array(c.result, ',')) AS e
         WHERE c.success AND split_part(e, ' ', 1) = ANY($1::text[])
         GROUP BY 1"
    } else {
        "SELECT relname::text AS relname, n_dead_tup AS dead, n_live_tup AS live
         FROM pg_stat_user_tables WHERE relid = ANY($1::text[]::regclass[])"
    };
    let due: Vec<String> = diesel::sql_query(format!(
        "SELECT relname FROM ({counts}) AS c WHERE dead >= $2 + live / 10 ORDER BY relname"
    ))
    .bind::<Array<diesel::sql_types::Text>, _>(&CHURNED[..])
    .bind::<BigInt, _>(VACUUM_DEAD_ROWS)
    .load::<Due>(conn)?
    .into_iter()
    .map(|d| d.relname)
    .collect();
    if due.is_empty() {
        return Ok(due);
    }
    let before: Timeout = diesel::sql_query("SHOW statement_timeout").get_result(conn)?;
    conn.batch_execute("SET statement_timeout = 0")?;
    let vacuumed = conn.batch_execute(&format!("VACUUM {}", due.join(", ")));
    diesel::sql_query("SELECT set_config('statement_timeout', $1, false)")
        .bind::<diesel::sql_types::Text, _>(&before.statement_timeout)
        .execute(conn)?;
    vacuumed.map(|()| due)
}
