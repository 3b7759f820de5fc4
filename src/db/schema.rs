//! Diesel table definitions (kept by hand: the points table is created by a DO block
//! that `diesel print-schema` cannot follow).

diesel::table! {
    metric_types (id) {
        id -> Integer,
        series -> Varchar,
        schema -> Jsonb,
        description -> Text,
        kind -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (user_id, session_id) {
        user_id -> Uuid,
        session_id -> Uuid,
        start_ts -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    session_owners (session_id) {
        session_id -> Uuid,
        user_id -> Uuid,
    }
}

diesel::table! {
    points (user_id, series_id, time, session_id) {
        user_id -> Uuid,
        series_id -> Integer,
        time -> Timestamptz,
        session_id -> Uuid,
        num -> Nullable<Double>,
        fields -> Nullable<Array<Text>>,
        field_values -> Nullable<Array<Double>>,
        value -> Json,
    }
}

diesel::table! {
    /// A per-connection temporary table (`ON COMMIT DELETE ROWS`) that ingest `COPY`s
    /// into before one `INSERT ... ON CONFLICT` moves the rows to `points`.
    points_staging (user_id, series_id, time, session_id) {
        user_id -> Uuid,
        series_id -> Integer,
        time -> Timestamptz,
        session_id -> Uuid,
        num -> Nullable<Double>,
        fields -> Nullable<Array<Text>>,
        field_values -> Nullable<Array<Double>>,
        value -> Json,
        job -> Integer,
    }
}

diesel::table! {
    user_generations (user_id) {
        user_id -> Uuid,
        generation -> BigInt,
        first_time -> Nullable<Timestamptz>,
        last_time -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    // Not unique in the database (migration 000008): one row per write of an hour.
    rollup_invalidations (user_id, series_id, hour) {
        user_id -> Uuid,
        series_id -> Integer,
        hour -> Timestamptz,
        created_at -> Timestamptz,
        hourly_exact -> Bool,
    }
}
