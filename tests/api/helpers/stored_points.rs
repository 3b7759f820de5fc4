//! Bulk points written straight into `points` (with their sessions and partitions), and
//! the list of what was written, to compare answers with point by point.

use super::database::{TestDb, series_id};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use seriesd::db::partitions::PartitionManager;
use uuid::Uuid;

pub const SECOND: Duration = Duration::seconds(1);
pub const MINUTE: Duration = Duration::minutes(1);

/// An RFC 3339 time.
pub fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The ids of the two series [`load_points`] writes: a numeric and a text one.
pub fn bulk_series(conn: &mut PgConnection) -> (i32, i32) {
    (
        series_id(conn, "session.gut_health_score"),
        series_id(conn, "session.example.series"),
    )
}

/// Loads `n` points for `user` straight into `points` (with their sessions): point `i`
/// is at `start + (i/2) * spacing`, in session `sessions[i % 2]`, of `numeric` (value
/// `{"value": i/4}`) or, every third point, `text` (a string with a comma, quotes and
/// a non-ASCII character).
pub fn load_points(
    db: &TestDb,
    user: Uuid,
    sessions: [Uuid; 2],
    series: (i32, i32),
    start: DateTime<Utc>,
    spacing: Duration,
    n: i64,
) {
    let mut conn = db.conn();
    let end = start + spacing * i32::try_from(n / 2 + 1).unwrap();
    let mut days = Vec::new();
    let mut t = start;
    while t <= end {
        days.push(t);
        t += Duration::days(1);
    }
    days.push(end);
    PartitionManager::new()
        .ensure_for_times(&mut conn, days)
        .unwrap();
    for table in [
        "sessions (user_id, session_id)",
        "session_owners (user_id, session_id)",
    ] {
        diesel::sql_query(format!(
            "INSERT INTO {table} VALUES ($1, $2), ($1, $3) ON CONFLICT DO NOTHING"
        ))
        .bind::<diesel::sql_types::Uuid, _>(user)
        .bind::<diesel::sql_types::Uuid, _>(sessions[0])
        .bind::<diesel::sql_types::Uuid, _>(sessions[1])
        .execute(&mut conn)
        .unwrap();
    }
    diesel::sql_query(
        "INSERT INTO points (user_id, series_id, time, session_id, num, value)
         SELECT $1,
                CASE WHEN i % 3 = 0 THEN $3 ELSE $2 END,
                $4 + (i / 2) * $8 * interval '1 microsecond',
                CASE WHEN i % 2 = 0 THEN $5 ELSE $6 END,
                CASE WHEN i % 3 = 0 THEN NULL ELSE i * 0.25 END,
                CASE WHEN i % 3 = 0 THEN json_build_object('value', 'note, \"' || i || '\" ✓')
                     ELSE json_build_object('value', i * 0.25) END
         FROM generate_series(0, $7 - 1) i",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Integer, _>(series.0)
    .bind::<diesel::sql_types::Integer, _>(series.1)
    .bind::<diesel::sql_types::Timestamptz, _>(start)
    .bind::<diesel::sql_types::Uuid, _>(sessions[0])
    .bind::<diesel::sql_types::Uuid, _>(sessions[1])
    .bind::<diesel::sql_types::BigInt, _>(n)
    .bind::<diesel::sql_types::BigInt, _>(spacing.num_microseconds().unwrap())
    .execute(&mut conn)
    .unwrap();
    // Written behind the service's back: widen the user's span as ingest would.
    let last = start + spacing * i32::try_from((n - 1) / 2).unwrap();
    seriesd::db::generations::bump_spanning(
        &mut conn,
        &[(
            user,
            Some(seriesd::db::generations::Span { first: start, last }),
        )],
    )
    .unwrap();
    diesel::sql_query("ANALYZE points")
        .execute(&mut conn)
        .unwrap();
}

/// What [`load_points`] stored, in export order: (time, series id, session, value).
pub fn expected_points(
    sessions: [Uuid; 2],
    series: (i32, i32),
    start: DateTime<Utc>,
    spacing: Duration,
    n: i64,
) -> Vec<(DateTime<Utc>, i32, Uuid, Value)> {
    let mut v: Vec<_> = (0..n)
        .map(|i| {
            let text = i % 3 == 0;
            (
                start + spacing * i32::try_from(i / 2).unwrap(),
                if text { series.1 } else { series.0 },
                sessions[(i % 2) as usize],
                if text {
                    json!({"value": format!("note, \"{i}\" ✓")})
                } else {
                    json!({"value": i as f64 * 0.25})
                },
            )
        })
        .collect();
    v.sort_by_key(|p| (p.0, p.1, p.2));
    v
}
