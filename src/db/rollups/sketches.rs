//! The SQL of the quantile sketches numeric rollup rows keep in `sketch` (see
//! [`crate::domain::sketch`]): a row holding at most two numbers keeps none (its `min`
//! and `max` are those numbers), any other row its packed counts by key. The rollup job
//! makes an hour's sketch from its points and a day's or a month's, or a compacted
//! hour's, by merging the finer rows' sketches: counts added up by key.
//!
//! Each is one more column of the statement that aggregates the rest of the row, in the
//! same pass over the points or the finer rows: the group's keys (or elements) gathered
//! with `array_agg`, then counted by key in a subquery over that one array.

use crate::domain::sketch::{count_of_sql, key_of_sql, key_sql, pack_sql};

/// The packed elements of the rollup row `r` (an alias): its sketch, or, when it keeps
/// none, one element for its `min` and one for its `max` if it holds two numbers.
fn row_elements(r: &str) -> String {
    let one = |v: &str| pack_sql(&key_sql(&format!("{r}.{v}")), "1");
    format!(
        "coalesce({r}.sketch, CASE WHEN {r}.n = 2 THEN ARRAY[{min}, {max}] ELSE ARRAY[{min}] END)",
        min = one("min"),
        max = one("max"),
    )
}

/// Joined to the rollup row `r`, one row per packed element of it, `e(e, i)`; `i = 1`
/// on exactly one of them ([`FIRST_ELEMENT`]), so that the row's other aggregates are
/// combined once.
pub(super) fn elements_of_row(r: &str) -> String {
    format!(
        "CROSS JOIN LATERAL unnest({}) WITH ORDINALITY AS e(e, i)",
        row_elements(r)
    )
}

/// The filter that counts each row once beside [`elements_of_row`].
pub(super) const FIRST_ELEMENT: &str = " FILTER (WHERE e.i = 1)";

/// The packed sketch of a group: `keys` is an `int8[]` of `(key, count)` pairs as
/// `k` and `c` columns of `unnest`ed rows, counted by `count` (an aggregate over `c`).
fn sketch_of(unnested: &str, key: &str, count: &str, n: &str) -> String {
    format!(
        "CASE WHEN {n} > 2 THEN (
             SELECT array_agg({packed} ORDER BY k) FROM (
                 SELECT {key} AS k, ({count})::int8 AS c FROM {unnested} GROUP BY 1
             ) y
         ) END",
        packed = pack_sql("k", "c"),
    )
}

/// The sketch column of a group of points whose numbers are `v`, `n` of them (an
/// aggregate expression).
pub(super) fn sketch_of_numbers(v: &str, n: &str) -> String {
    let keys = format!("unnest(array_agg({})) AS x(x)", key_sql(v));
    sketch_of(&keys, "x", "count(*)", n)
}

/// The sketch column of a group of rollup rows joined to [`elements_of_row`], holding
/// `n` numbers (an aggregate expression).
pub(super) fn sketch_of_rows(n: &str) -> String {
    sketch_of(
        "unnest(array_agg(e.e)) AS x(x)",
        &key_of_sql("x"),
        &format!("sum({})", count_of_sql("x")),
        n,
    )
}
