//! `seriesd seed --demo`: half a year of sessions of one demo user, so that a fresh
//! development server has something to explore (`make run` loads it). The sessions are
//! the days up to now, one a day, with points of the four seeded series at fixed hours;
//! ids and values follow from the day alone, so loading again stores nothing twice and
//! adds only the days (and hours) that came since.

use crate::db::DbPool;
use crate::db::partitions::PartitionManager;
use crate::error::{ApiError, BoxError};
use crate::services::catalogue::Catalogue;
use crate::services::ingest::{self, IngestOutcome};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The demo user: `d3000000-0000-4000-8000-000000000001`.
pub const DEMO_USER: Uuid = Uuid::from_u128(0xd300_0000_0000_4000_8000_0000_0000_0001);

/// Days of sessions, ending today.
pub const DEMO_DAYS: i64 = 182;

/// Notes of the free-text series, drawn per day.
const NOTES: [&str; 5] = [
    "felt fine",
    "tired",
    "after a run",
    "late dinner",
    "slept well",
];

/// What a load did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DemoLoad {
    pub sessions: usize,
    pub points: usize,
    pub inserted: usize,
    pub updated: usize,
}

/// A 64-bit number that depends on `seed` only (SplitMix64's finaliser).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) that depends on `seed` only.
fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// The session id of the day `number`: random-looking, so that ids differ from their
/// first characters on (as the explorer shows them), and the same at every load.
pub fn session_id(number: i64) -> Uuid {
    let day = (number as u64).wrapping_mul(2);
    let bits = (u128::from(mix(day)) << 64) | u128::from(mix(day + 1));
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

/// `hh:mm` on `day`'s date, UTC.
fn at(day: DateTime<Utc>, hh: u32, mm: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hh, mm, 0).unwrap_or_default();
    day.date_naive().and_time(time).and_utc()
}

/// The session of the day `number` days after 1970-01-01 (`day` is its midnight), with
/// its points at or before `now`: a body for `POST /api/sessions/`.
pub fn session_body(number: i64, day: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    let seed = |k: u64| unit((number as u64).wrapping_mul(16).wrapping_add(k));
    let d = number as f64;
    let mut points = Vec::new();
    let nights = (seed(0) * 4.0).floor();
    points.push((
        at(day, 6, 30),
        "session.urine.night_count",
        json!({"value": nights}),
    ));
    for (i, (hh, mm)) in [(7, 10), (11, 30), (16, 0), (21, 45)]
        .into_iter()
        .enumerate()
    {
        // Paler after the day's first sample, with a slow drift over weeks.
        let drift = (d / 11.0).sin() * 20.0;
        let r = 235.0 - 25.0 * seed(1 + i as u64) + drift * 0.3;
        let g = 205.0 - 40.0 * seed(5 + i as u64) - if i == 0 { 30.0 } else { 0.0 } + drift;
        let b = 60.0 + 50.0 * seed(9 + i as u64) + if i == 0 { 0.0 } else { 30.0 };
        let channel = |v: f64| v.round().clamp(0.0, 255.0);
        let colour = json!({"r": channel(r), "g": channel(g), "b": channel(b)});
        points.push((at(day, hh, mm), "session.urine.color", colour));
    }
    for (i, hh) in [8, 13, 19].into_iter().enumerate() {
        let score = 6.0 + 2.0 * (d / 9.0 + i as f64).sin() + 2.0 * (seed(13 + i as u64) - 0.5);
        let score = (score.clamp(0.0, 10.0) * 10.0).round() / 10.0;
        points.push((
            at(day, hh, 0),
            "session.gut_health_score",
            json!({"value": score}),
        ));
    }
    let note = NOTES[(seed(16) * NOTES.len() as f64) as usize % NOTES.len()];
    points.push((
        at(day, 21, 0),
        "session.example.series",
        json!({"value": note}),
    ));
    let data: Vec<Value> = points
        .into_iter()
        .filter(|(time, ..)| *time <= now)
        .map(|(time, series, value)| json!({"series": series, "time": time, "value": value}))
        .collect();
    json!({
        "user_id": DEMO_USER,
        "session_id": session_id(number),
        "start_ts": at(day, 6, 30),
        "data": data,
    })
}

/// Loads the demo user's sessions of the last [`DEMO_DAYS`] days up to `now`, through
/// ingest's own validation and batch writer, as a post of each would, on a connection of
/// `pool` (which has the session settings and the staging table ingest writes through).
pub fn load(pool: &DbPool, now: DateTime<Utc>, append_hours: u32) -> Result<DemoLoad, BoxError> {
    let mut pooled = pool.get()?;
    let conn = &mut **pooled;
    let snapshot = Catalogue::new().reload(conn)?;
    let today = now.timestamp().div_euclid(86_400);
    let mut writes = Vec::new();
    for number in today - DEMO_DAYS + 1..=today {
        let day = DateTime::<Utc>::UNIX_EPOCH + Duration::days(number);
        let body = session_body(number, day, now);
        if body["data"].as_array().is_some_and(|d| d.is_empty()) {
            continue;
        }
        let write = ingest::parse_session(body.to_string().as_bytes(), &snapshot, usize::MAX)
            .map_err(|rejection| rejection.error)?;
        writes.push(write);
    }
    let mut load = DemoLoad {
        sessions: writes.len(),
        ..DemoLoad::default()
    };
    let results = ingest::write_batch(conn, &PartitionManager::new(), &writes, append_hours);
    for result in results {
        let IngestOutcome {
            stored,
            inserted,
            updated,
            ..
        } = result.map_err(|e: ApiError| Box::new(e) as BoxError)?;
        load.points += stored;
        load.inserted += inserted;
        load.updated += updated;
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_days_session_depends_on_the_day_alone_and_holds_no_future_point() {
        let day = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let late = day + Duration::days(2);
        let body = session_body(20_000, day, late);
        assert_eq!(body, session_body(20_000, day, late));
        assert_eq!(body["data"].as_array().unwrap().len(), 9);
        assert_ne!(
            body["session_id"],
            session_body(20_001, day, late)["session_id"]
        );
        // At 12:00 only the points of the morning exist.
        let noon = at(day, 12, 0);
        assert_eq!(
            session_body(20_000, day, noon)["data"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        for point in body["data"].as_array().unwrap() {
            if point["series"] == "session.urine.color" {
                for c in ["r", "g", "b"] {
                    let v = point["value"][c].as_f64().unwrap();
                    assert!((0.0..=255.0).contains(&v), "{point}");
                }
            }
        }
    }

    #[test]
    fn unit_is_in_zero_to_one() {
        for k in 0..1000 {
            assert!((0.0..1.0).contains(&unit(k)));
        }
    }
}
