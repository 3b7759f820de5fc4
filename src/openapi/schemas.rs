//! The value sets of query parameters (`agg_func`, `fill`, `format`, `kind`,
//! `interval`, times), described from the types that parse them.

use crate::domain::query::{AggFunc, Fill};
use crate::services::catalogue_admin::Kind;
use crate::services::retrieval::Format;
use serde_json::json;
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

fn string_enum(description: &str, values: &[&str], example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .examples([json!(example)])
        .into()
}

impl PartialSchema for AggFunc {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = AggFunc::ALL.iter().map(|a| a.name()).collect();
        string_enum(
            "An aggregate: `avg, min, max, count, sum`; `first`, `last` by time; `median`, \
             `p90`, `p95`, `p99` (continuous percentiles); `stddev` (sample). Case is ignored.",
            &names,
            "avg",
        )
    }
}
impl ToSchema for AggFunc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AggFunc")
    }
}

impl PartialSchema for Fill {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Fill::ALL.iter().map(|f| f.name()).collect();
        string_enum(
            "Gap filling: `none` leaves empty buckets out; the others emit every bucket \
             from `start_time` to `end_time`, empty ones as `null`, `0`, the previous \
             value, or interpolated linearly. Case is ignored.",
            &names,
            "none",
        )
    }
}
impl ToSchema for Fill {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Fill")
    }
}

impl PartialSchema for Format {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        string_enum(
            "`json`: keyset-paginated pages; `csv` and `ndjson`: the whole range, \
             streamed as a download. Case is ignored.",
            &names,
            "json",
        )
    }
}
impl ToSchema for Format {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Format")
    }
}

impl PartialSchema for Kind {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        string_enum(
            "How the series aggregates when a query names no `agg_func`: `measure` \
             (`avg`), `count` (`sum`) or `sample` (`last`).",
            &names,
            "measure",
        )
    }
}
impl ToSchema for Kind {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Kind")
    }
}

/// `interval`: a named bucket width or a fixed width.
pub struct IntervalParam;

/// The named widths `interval` accepts.
pub const INTERVAL_NAMES: &[&str] = &[
    "sec", "second", "min", "minute", "hour", "day", "week", "month", "quarter", "year",
];

impl PartialSchema for IntervalParam {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(INTERVAL_NAMES.iter().copied()))
                    .description(Some(
                        "A named width: `sec`, `min`, `hour` are fixed; `day`, `week` \
                         (from Monday), `month`, `quarter`, `year` are calendar buckets in \
                         `tz`.",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]{1,9}[smhdw]$"))
                    .description(Some(
                        "A fixed width: a positive whole number of seconds, minutes, hours, \
                         days or weeks (`30s`, `5m`, `3h`, `5d`, `2w`), at most 36525d (100 \
                         years), aligned like TimescaleDB's `time_bucket` on \
                         2000-01-03T00:00:00Z.",
                    )),
            )
            .description(Some("The bucket width."))
            .examples([json!("week"), json!("5m")])
            .into()
    }
}
impl ToSchema for IntervalParam {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Interval")
    }
}

/// A time in a query parameter: RFC 3339 with a zone, or a date (midnight UTC).
pub struct TimeParam;

impl PartialSchema for TimeParam {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime),
            )))
            .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date),
            )))
            .description(Some(
                "RFC 3339 with a zone (`2025-01-01T00:05:00Z`), or `YYYY-MM-DD` meaning \
                 midnight UTC; years 1900–2200.",
            ))
            .examples([json!("2025-01-01T00:00:00Z"), json!("2025-01-01")])
            .into()
    }
}
impl ToSchema for TimeParam {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimeParam")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_names_all_parse() {
        for name in INTERVAL_NAMES {
            assert!(
                crate::domain::interval::Interval::parse(name).is_ok(),
                "{name}"
            );
        }
    }
}
