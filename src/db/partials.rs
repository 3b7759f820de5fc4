//! Partial hourly aggregates of a write that only adds points (a batch of new sessions).
//!
//! Such a write cannot change what is stored, only add to it, and every aggregate the
//! rollups keep is decomposable: so instead of leaving its hours to raw points until the
//! rollup job runs, it appends its own points' aggregates to the hourly rollups, one more
//! row per (user, series, hour[, field]), in the writing transaction. Queries combine an
//! hour's rows as they combine hours into buckets, so the hour is read from its rows at
//! once; its invalidation (`hourly_exact`) keeps only its day and month to the job, which
//! recomputes the hour from raw points into one row again.
//!
//! Only recent hours get such rows (`ROLLUP_APPEND_HOURS`, the current and the previous
//! one by default): a batch's older hours are invalidated as any other write's. Appended
//! rows cost a bulk load of history a fair part of its speed (two more rows per hour
//! written), for hours few queries read while they are being loaded, and the job
//! recomputes soon; live data, the hours queries ask for while they are being written,
//! is what they are for.
//!
//! The rows are computed here, from the points the batch writes, exactly as the job
//! computes an hour from raw points (`rollups::refresh_from`): first and last by time,
//! ties broken by the smaller (first) or larger (last) number, and by session id for
//! whole values.

use super::points::PointRow;
use crate::domain::rollup_plan::hour_of;
use crate::domain::sketch::Sketch;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// One hour's aggregate of one number (the main one, field `""`, or an object field).
#[derive(Debug, Clone, PartialEq)]
pub struct Numbers {
    pub n: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: (DateTime<Utc>, f64),
    pub last: (DateTime<Utc>, f64),
    /// The quantile sketch of the numbers, stored when they are more than two.
    pub sketch: Sketch,
}

/// One hour's aggregate of whole values: first and last by (time, session id).
#[derive(Debug, Clone, PartialEq)]
pub struct Values<'a> {
    pub n: i64,
    pub first: (DateTime<Utc>, Uuid, &'a str),
    pub last: (DateTime<Utc>, Uuid, &'a str),
}

/// (time, number) pairs ordered as `ORDER BY time, v` orders them (no NaN is stored).
fn by_time_then_value(a: (DateTime<Utc>, f64), b: (DateTime<Utc>, f64)) -> Ordering {
    a.0.cmp(&b.0)
        .then(a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal))
}

impl Numbers {
    fn of(time: DateTime<Utc>, v: f64) -> Self {
        let mut sketch = Sketch::default();
        sketch.add(v);
        Numbers {
            sketch,
            n: 1,
            sum: v,
            min: v,
            max: v,
            first: (time, v),
            last: (time, v),
        }
    }

    fn add(&mut self, time: DateTime<Utc>, v: f64) {
        self.sketch.add(v);
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if by_time_then_value((time, v), self.first) == Ordering::Less {
            self.first = (time, v);
        }
        if by_time_then_value((time, v), self.last) == Ordering::Greater {
            self.last = (time, v);
        }
    }
}

/// The partial rows of a batch: numbers by (user, series, field, hour), whole values by
/// (user, series, hour), for its recent hours; and its other hours.
#[derive(Debug, Default)]
pub struct Partials<'a> {
    pub numbers: BTreeMap<(Uuid, i32, &'a str, DateTime<Utc>), Numbers>,
    pub values: BTreeMap<(Uuid, i32, DateTime<Utc>), Values<'a>>,
    /// The (user, series, hour) keys before `live_from`: invalidated only.
    pub older: BTreeSet<(Uuid, i32, DateTime<Utc>)>,
}

impl<'a> Partials<'a> {
    /// The aggregates of `rows` (each point once) in hours from `live_from` on, and the
    /// keys of the others.
    pub fn of(rows: impl IntoIterator<Item = &'a PointRow>, live_from: DateTime<Utc>) -> Self {
        let mut p = Partials::default();
        for r in rows {
            let hour = hour_of(r.time);
            if hour < live_from {
                p.older.insert((r.user_id, r.series_id, hour));
                continue;
            }
            let numbers = r.num.map(|v| ("", v)).into_iter();
            let fields = r.fields.iter().map(|(f, v)| (f.as_str(), *v));
            for (field, v) in numbers.chain(fields) {
                p.numbers
                    .entry((r.user_id, r.series_id, field, hour))
                    .and_modify(|a| a.add(r.time, v))
                    .or_insert_with(|| Numbers::of(r.time, v));
            }
            let point = (r.time, r.session_id, r.value.as_str());
            let values = p
                .values
                .entry((r.user_id, r.series_id, hour))
                .or_insert(Values {
                    n: 0,
                    first: point,
                    last: point,
                });
            values.n += 1;
            if (point.0, point.1) < (values.first.0, values.first.1) {
                values.first = point;
            }
            if (point.0, point.1) > (values.last.0, values.last.1) {
                values.last = point;
            }
        }
        p
    }

    /// Appends the rows to the hourly rollups and records their hours as awaiting the
    /// job with exact hourly rows, and the older hours as awaiting it, in one statement.
    /// Call inside the writing transaction.
    pub fn append(&self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.values.is_empty() && self.older.is_empty() {
            return Ok(());
        }
        let n = self.numbers.iter();
        let v = self.values.iter();
        diesel::sql_query(
            "WITH numbers AS (
                 INSERT INTO rollup_hourly
                     (user_id, series_id, field, hour, n, sum, min, max, first_time, first, last_time, last, sketch)
                 SELECT u, s, f, h, n, sum, min, max, ft, fv, lt, lv, sk::int8[]
                 FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[],
                     $5::int8[], $6::float8[], $7::float8[], $8::float8[],
                     $9::timestamptz[], $10::float8[], $11::timestamptz[], $12::float8[],
                     $26::text[])
                     AS t(u, s, f, h, n, sum, min, max, ft, fv, lt, lv, sk)
             ), vals AS (
                 INSERT INTO rollup_values_hourly
                     (user_id, series_id, hour, n, first_time, first_session, first, last_time, last_session, last)
                 SELECT * FROM unnest($13::uuid[], $14::int[], $15::timestamptz[], $16::int8[],
                     $17::timestamptz[], $18::uuid[], $19::text[]::json[],
                     $20::timestamptz[], $21::uuid[], $22::text[]::json[])
             )
             INSERT INTO rollup_invalidations (user_id, series_id, hour, hourly_exact)
             SELECT u, s, h, true FROM unnest($13::uuid[], $14::int[], $15::timestamptz[]) AS t(u, s, h)
             UNION ALL
             SELECT u, s, h, false FROM unnest($23::uuid[], $24::int[], $25::timestamptz[]) AS t(u, s, h)",
        )
        .bind::<Array<SqlUuid>, _>(n.clone().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(n.clone().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(n.clone().map(|(k, _)| k.2).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(n.clone().map(|(k, _)| k.3).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(n.clone().map(|(_, a)| a.n).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(n.clone().map(|(_, a)| a.sum).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(n.clone().map(|(_, a)| a.min).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(n.clone().map(|(_, a)| a.max).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(n.clone().map(|(_, a)| a.first.0).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(n.clone().map(|(_, a)| a.first.1).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(n.clone().map(|(_, a)| a.last.0).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(n.map(|(_, a)| a.last.1).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(v.clone().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(v.clone().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(v.clone().map(|(k, _)| k.2).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(v.clone().map(|(_, a)| a.n).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(v.clone().map(|(_, a)| a.first.0).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(v.clone().map(|(_, a)| a.first.1).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(v.clone().map(|(_, a)| a.first.2).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(v.clone().map(|(_, a)| a.last.0).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(v.clone().map(|(_, a)| a.last.1).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(v.map(|(_, a)| a.last.2).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(self.older.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(self.older.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(self.older.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            self.numbers
                .values()
                .map(|a| a.sketch.packed().map(|p| array_literal(&p)))
                .collect::<Vec<_>>(),
        )
        .execute(conn)?;
        Ok(())
    }
}

/// `{1,2,3}`: a PostgreSQL array literal (the sketches of a batch go as one `text[]`,
/// as arrays of arrays must all be of one length).
fn array_literal(elements: &[i64]) -> String {
    let items: Vec<String> = elements.iter().map(i64::to_string).collect();
    format!("{{{}}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn point(
        t: DateTime<Utc>,
        session: u128,
        num: Option<f64>,
        fields: &[(&str, f64)],
    ) -> PointRow {
        PointRow {
            user_id: Uuid::from_u128(1),
            series_id: 7,
            time: t,
            session_id: Uuid::from_u128(session),
            num,
            fields: fields.iter().map(|(f, v)| (f.to_string(), *v)).collect(),
            value: format!("{{\"s\":{session}}}"),
        }
    }

    #[test]
    fn ties_break_like_the_sql_and_hours_and_fields_stay_apart() {
        let h = Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap();
        let t1 = h + TimeDelta::minutes(5);
        let t2 = h + TimeDelta::minutes(50);
        let rows = [
            point(t2, 3, Some(4.0), &[("r", 1.0)]),
            point(t1, 2, Some(9.0), &[]),
            point(t1, 1, Some(2.0), &[("r", 5.0)]),
            point(t2, 4, Some(8.0), &[]),
            point(h + TimeDelta::hours(1), 5, None, &[("r", 3.0)]),
        ];
        let p = Partials::of(&rows, h - TimeDelta::hours(1));
        let user = Uuid::from_u128(1);
        let main = &p.numbers[&(user, 7, "", h)];
        assert_eq!((main.n, main.sum, main.min, main.max), (4, 23.0, 2.0, 9.0));
        assert_eq!(main.sketch.len(), 4);
        assert_eq!(main.sketch.quantile(1.0), Some(9.0));
        assert_eq!(array_literal(&[1, -2]), "{1,-2}");
        // Two points at the first time: the smaller number first; at the last time, the
        // larger one last.
        assert_eq!(main.first, (t1, 2.0));
        assert_eq!(main.last, (t2, 8.0));
        let r = &p.numbers[&(user, 7, "r", h)];
        assert_eq!((r.n, r.first, r.last), (2, (t1, 5.0), (t2, 1.0)));
        assert_eq!(p.numbers[&(user, 7, "r", h + TimeDelta::hours(1))].n, 1);
        assert!(
            !p.numbers
                .contains_key(&(user, 7, "", h + TimeDelta::hours(1)))
        );
        // Whole values: ties by session id.
        let v = &p.values[&(user, 7, h)];
        assert_eq!(v.n, 4);
        assert_eq!((v.first.1, v.first.2), (Uuid::from_u128(1), "{\"s\":1}"));
        assert_eq!((v.last.1, v.last.2), (Uuid::from_u128(4), "{\"s\":4}"));
        assert_eq!(p.values.len(), 2);
        assert!(p.older.is_empty());
        // Hours before `live_from` are only listed.
        let p = Partials::of(&rows, h + TimeDelta::hours(1));
        assert_eq!(p.values.len(), 1);
        assert_eq!(p.older, [(user, 7, h)].into());
    }
}
