//! Gap filling and smoothing of one series' buckets after the database answered: pure
//! functions over [`Cell`]s (`fill=null|previous|zero|linear`, `smooth=N`).

use super::interval::Interval;
use super::query::{AggFunc, Fill};
use super::series_shape::Shape;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use std::collections::BTreeMap;

/// A bucket's value while filling and smoothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num(Option<f64>),
    Fields(BTreeMap<String, Option<f64>>),
    Json(Option<Value>),
}

/// Every bucket from the one holding `start` to the one holding `end`.
pub fn bucket_range(
    interval: Interval,
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut b = interval.floor(start, tz);
    while b <= end {
        out.push(b);
        let next = interval.next(b, tz);
        if next <= b {
            break;
        }
        b = next;
    }
    out
}

/// The numbers of one field across the buckets (`Num` cells use the field "").
fn field_series(values: &[Option<Cell>], field: &str) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|c| match c {
            Some(Cell::Num(v)) if field.is_empty() => *v,
            Some(Cell::Fields(f)) => f.get(field).copied().flatten(),
            _ => None,
        })
        .collect()
}

fn field_names(values: &[Option<Cell>]) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .filter_map(|c| match c {
            Some(Cell::Fields(f)) => Some(f.keys().cloned()),
            _ => None,
        })
        .flatten()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Gives every non-empty cell of a *fields* series every field: those its schema declares
/// (`declared`) and those any of its buckets hold. A field a bucket's points lack is
/// `missing` (0 for `count`, else null). Returns the field names, for
/// [`empty_as_fields`].
pub fn complete_fields(
    values: &mut [Option<Cell>],
    declared: &[String],
    missing: Option<f64>,
) -> Vec<String> {
    let mut names = field_names(values);
    names.extend(declared.iter().cloned());
    names.sort();
    names.dedup();
    for cell in values.iter_mut() {
        if let Some(Cell::Fields(f)) = cell {
            for name in &names {
                f.entry(name.clone()).or_insert(missing);
            }
        }
    }
    names
}

/// The empty buckets left after filling, as objects whose fields are all null: a
/// *fields* series answers an object in every bucket.
pub fn empty_as_fields(values: &mut [Option<Cell>], names: &[String]) {
    for cell in values.iter_mut().filter(|c| c.is_none()) {
        *cell = Some(Cell::Fields(
            names.iter().map(|n| (n.clone(), None)).collect(),
        ));
    }
}

/// Rebuilds cells from per-field numbers.
fn set_fields(values: &mut [Option<Cell>], shape: Shape, columns: &[(String, Vec<Option<f64>>)]) {
    for (i, cell) in values.iter_mut().enumerate() {
        match shape {
            Shape::Number => {
                let v = columns.first().and_then(|(_, c)| c[i]);
                *cell = Some(Cell::Num(v));
            }
            Shape::Fields => {
                let f: BTreeMap<String, Option<f64>> = columns
                    .iter()
                    .map(|(name, c)| (name.clone(), c[i]))
                    .collect();
                *cell = Some(Cell::Fields(f));
            }
            Shape::Other => {}
        }
    }
}

/// Whether a gap from the bucket starting at `from` to the one starting at `to` is short
/// enough to fill: at most `max_gap` seconds (any gap without one).
fn fillable(from: DateTime<Utc>, to: DateTime<Utc>, max_gap: Option<i64>) -> bool {
    max_gap.is_none_or(|g| to.timestamp() - from.timestamp() <= g)
}

/// Applies `fill` to the cells of one series (empty buckets are `None`). With `max_gap`
/// (seconds), `previous` fills a bucket only if it starts at most that long after the
/// start of the last non-empty bucket, and `linear` only between non-empty buckets whose
/// starts are at most that far apart; longer gaps stay empty.
pub fn fill(
    buckets: &[DateTime<Utc>],
    values: &mut [Option<Cell>],
    mode: Fill,
    shape: Shape,
    agg: AggFunc,
    max_gap: Option<i64>,
) {
    let numeric = shape != Shape::Other || agg == AggFunc::Count;
    match mode {
        Fill::None | Fill::Null => {}
        Fill::Previous => {
            let mut last: Option<(DateTime<Utc>, Cell)> = None;
            for (b, v) in buckets.iter().zip(values.iter_mut()) {
                match v {
                    Some(c) => last = Some((*b, c.clone())),
                    None => {
                        if let Some((from, c)) = &last
                            && fillable(*from, *b, max_gap)
                        {
                            *v = Some(c.clone());
                        }
                    }
                }
            }
        }
        Fill::Zero if numeric => {
            let names = field_names(values);
            for v in values.iter_mut() {
                if v.is_none() {
                    *v = Some(if names.is_empty() {
                        Cell::Num(Some(0.0))
                    } else {
                        Cell::Fields(names.iter().map(|n| (n.clone(), Some(0.0))).collect())
                    });
                }
            }
        }
        Fill::Linear if numeric => {
            let names = if shape == Shape::Fields {
                field_names(values)
            } else {
                vec![String::new()]
            };
            let columns: Vec<(String, Vec<Option<f64>>)> = names
                .iter()
                .map(|n| {
                    let column = interpolate(buckets, &field_series(values, n), max_gap);
                    (n.clone(), column)
                })
                .collect();
            let shape = if shape == Shape::Other {
                Shape::Number
            } else {
                shape
            };
            set_fields(values, shape, &columns);
        }
        // Zero and linear do not apply to non-numeric values: their gaps stay null.
        Fill::Zero | Fill::Linear => {}
    }
}

/// Linear interpolation by bucket time between neighbouring known values whose bucket
/// starts are at most `max_gap` seconds apart (any without one); leading and trailing
/// gaps stay empty.
pub fn interpolate(
    buckets: &[DateTime<Utc>],
    v: &[Option<f64>],
    max_gap: Option<i64>,
) -> Vec<Option<f64>> {
    let mut out = v.to_vec();
    let mut prev: Option<usize> = None;
    for i in 0..v.len() {
        if v[i].is_none() {
            continue;
        }
        if let Some(p) = prev
            && i > p + 1
            && fillable(buckets[p], buckets[i], max_gap)
            && let (Some(a), Some(b)) = (v[p], v[i])
        {
            let t0 = buckets[p].timestamp_micros() as f64;
            let t1 = buckets[i].timestamp_micros() as f64;
            for (j, slot) in out.iter_mut().enumerate().take(i).skip(p + 1) {
                let t = buckets[j].timestamp_micros() as f64;
                *slot = Some(a + (b - a) * (t - t0) / (t1 - t0));
            }
        }
        prev = Some(i);
    }
    out
}

/// Trailing moving average over `n` buckets (`ROWS BETWEEN n-1 PRECEDING AND CURRENT
/// ROW`): empty buckets in the window are skipped, like SQL's `AVG` skips nulls.
pub fn moving_average(v: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    (0..v.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(n);
            let window: Vec<f64> = v[from..=i].iter().flatten().copied().collect();
            if window.is_empty() {
                None
            } else {
                Some(window.iter().sum::<f64>() / window.len() as f64)
            }
        })
        .collect()
}

pub fn smooth(values: &mut [Option<Cell>], n: usize) {
    let is_fields = values.iter().any(|c| matches!(c, Some(Cell::Fields(_))));
    let is_num = values.iter().any(|c| matches!(c, Some(Cell::Num(_))));
    if is_fields {
        let columns: Vec<(String, Vec<Option<f64>>)> = field_names(values)
            .into_iter()
            .map(|name| {
                let col = moving_average(&field_series(values, &name), n);
                (name, col)
            })
            .collect();
        set_fields(values, Shape::Fields, &columns);
    } else if is_num {
        let col = moving_average(&field_series(values, ""), n);
        set_fields(values, Shape::Number, &[(String::new(), col)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seed_001_interpolation() {
        // Ticks at :36, :37, :40, :42 bucketed by second.
        let t = |s: u32| Utc.with_ymd_and_hms(2019, 2, 18, 10, 55, s).unwrap();
        let buckets: Vec<_> = (36..=42).map(t).collect();
        let v = [
            Some(100.0),
            Some(102.0),
            None,
            None,
            Some(103.0),
            None,
            Some(104.0),
        ];
        let out = interpolate(&buckets, &v, None);
        let rounded: Vec<f64> = out
            .iter()
            .map(|x| (x.unwrap() * 10_000.0).round() / 10_000.0)
            .collect();
        assert_eq!(
            rounded,
            vec![100.0, 102.0, 102.3333, 102.6667, 103.0, 103.5, 104.0]
        );
        assert_eq!(
            interpolate(&buckets[..3], &[None, Some(1.0), None], None),
            vec![None, Some(1.0), None]
        );
    }

    #[test]
    fn max_gap_bounds_the_gaps_filled() {
        // Hourly buckets with values at hours 0, 2 and 6.
        let h0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let buckets: Vec<_> = (0..8).map(|h| h0 + chrono::TimeDelta::hours(h)).collect();
        let known = |h: usize| [0usize, 2, 6].contains(&h).then_some(h as f64);
        let v: Vec<Option<f64>> = (0..8).map(known).collect();
        // Linear: 0..2 spans 2 h, 2..6 spans 4 h; the trailing hour 7 stays empty.
        let out = interpolate(&buckets, &v, Some(2 * 3600));
        assert_eq!(out[1], Some(1.0));
        assert_eq!(out[3..6], [None, None, None]);
        let out = interpolate(&buckets, &v, Some(4 * 3600));
        assert_eq!(out[3..6], [Some(3.0), Some(4.0), Some(5.0)]);
        assert_eq!(out[7], None);
        // Previous: a bucket up to max_gap after the last known start.
        let mut cells: Vec<Option<Cell>> =
            v.iter().map(|x| x.map(|x| Cell::Num(Some(x)))).collect();
        fill(
            &buckets,
            &mut cells,
            Fill::Previous,
            Shape::Number,
            AggFunc::Avg,
            Some(2 * 3600),
        );
        let got: Vec<Option<Cell>> = cells;
        let num = |x: f64| Some(Cell::Num(Some(x)));
        assert_eq!(
            got,
            vec![
                num(0.0),
                num(0.0),
                num(2.0),
                num(2.0),
                num(2.0),
                None,
                num(6.0),
                num(6.0)
            ]
        );
    }

    #[test]
    fn fields_series_hold_every_field_in_every_bucket() {
        let cell = |pairs: &[(&str, Option<f64>)]| {
            Some(Cell::Fields(
                pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ))
        };
        let mut values = [cell(&[("r", Some(1.0))]), None, cell(&[("x", None)])];
        let names = complete_fields(&mut values, &["g".into(), "r".into()], None);
        assert_eq!(names, ["g", "r", "x"]);
        assert_eq!(
            values[0],
            cell(&[("g", None), ("r", Some(1.0)), ("x", None)])
        );
        assert_eq!(values[1], None);
        empty_as_fields(&mut values, &names);
        assert_eq!(values[1], cell(&[("g", None), ("r", None), ("x", None)]));
        // Counted, a field without points is 0.
        let mut values = [cell(&[("r", Some(2.0))])];
        complete_fields(&mut values, &["g".into()], Some(0.0));
        assert_eq!(values[0], cell(&[("g", Some(0.0)), ("r", Some(2.0))]));
    }

    #[test]
    fn seed_001_moving_average() {
        let v = [
            Some(1_000_000.0),
            Some(1_000_000.0),
            Some(1_050_000.0),
            Some(1_000_000.0),
        ];
        assert_eq!(
            moving_average(&v, 2),
            vec![
                Some(1_000_000.0),
                Some(1_000_000.0),
                Some(1_025_000.0),
                Some(1_025_000.0)
            ]
        );
        assert_eq!(
            moving_average(&[None, Some(2.0), None], 2),
            vec![None, Some(2.0), Some(2.0)]
        );
    }
}
