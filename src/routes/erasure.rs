//! `DELETE /api/timeseries/` (a range of a user's points) and `DELETE /api/users/{id}/`
//! (everything stored of a user).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::TimeParam;
use crate::routes::query_params::{bool_param, check, patterns_param, required_uuid, time_param};
use crate::services::erasure::{self, DeleteLimits, Erased, RangeDeleted, RangeDeletion};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use utoipa::IntoParams;
use uuid::Uuid;

fn limits(state: &AppState) -> DeleteLimits {
    DeleteLimits {
        points: state.settings.delete_batch_points,
        sessions: state.settings.erase_batch_sessions,
    }
}

/// Validates `DELETE /api/timeseries/`'s parameters as the query's are validated (both
/// times required); every problem is reported at once, by parameter.
pub fn parse_range_deletion(
    params: &HashMap<String, String>,
    limits: &crate::domain::query::PatternLimits,
) -> Result<RangeDeletion, ApiError> {
    let mut errors = Map::new();
    let user = required_uuid(params, "user_id", &mut errors);
    let patterns = patterns_param(params, limits, &mut errors);
    let mut required_time = |name: &str| {
        if !params.contains_key(name) {
            errors.insert(name.into(), json!(["This parameter is required."]));
        }
        time_param(params, name, &mut errors)
    };
    let start = required_time("start_time");
    let end = required_time("end_time");
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        errors.insert(
            "start_time".into(),
            json!(["start_time must not be after end_time."]),
        );
    }
    match (user, patterns, start, end) {
        (Some(user), Some(patterns), Some(start), Some(end)) if errors.is_empty() => {
            Ok(RangeDeletion {
                user,
                patterns,
                start,
                end,
            })
        }
        _ => Err(ApiError::Invalid(Value::Object(errors))),
    }
}

/// `DELETE /api/timeseries/?user_id=&series=&start_time=&end_time=`.
#[utoipa::path(
    delete,
    path = "/api/timeseries/",
    operation_id = "timeseries_destroy",
    tag = "timeseries",
    summary = "Delete a range of points",
    description = "Deletes one user's points of the matched series with times from \
                   `start_time` to `end_time` (both included; both required), with the \
                   query's rules for every parameter. The hours they held are refreshed in \
                   the rollups and the user's cached answers become unreachable. Sessions \
                   stay, even when left without points. The points go in transactions of at \
                   most `DELETE_BATCH_POINTS` each, so a large range never stalls other \
                   writes; a deletion cut short (the server stopped) keeps what it deleted, \
                   and asking again deletes the rest. A user token may only delete its own \
                   user's points (403 otherwise).",
    params(RangeDeletionParams),
    responses(
        (status = 200, description = "Deleted; `deleted` counts the points.", body = RangeDeleted,
            example = json!({"deleted": 1440})),
        (status = 400, description = "Field errors naming each bad or missing parameter.",
            body = crate::openapi::BadRequestBody,
            example = json!({"end_time": ["This parameter is required."],
                             "series": ["Unclosed '[' in pattern '[a'."]})),
        (status = 403, response = crate::openapi::Forbidden),
    )
)]
pub async fn delete_range(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = parse_range_deletion(&params, &state.settings.pattern_limits)?;
    caller.authorize_user(q.user)?;
    let user = q.user;
    let catalogue = state.catalogue.clone();
    let limits = limits(&state);
    let deleted = state
        .heavy
        .run(move |conn| erasure::delete_range(conn, &catalogue, &q, limits))
        .await?;
    if deleted.deleted > 0 {
        state.queries.forget_user(user).await;
    }
    Ok(HttpResponse::Ok().json(deleted))
}

/// `DELETE /api/users/{user_id}/[?tokens=true]`.
#[utoipa::path(
    delete,
    path = "/api/users/{user_id}/",
    operation_id = "users_destroy",
    tag = "users",
    summary = "Erase a user",
    description = "Deletes everything stored of the user: every session and point, the \
                   user's rollups, pending rollup refreshes and cached answers, and with \
                   `tokens=true` (admin tokens only) the user's API tokens. Afterwards every \
                   read of the user answers as for a user who never existed, on every \
                   replica; erasing again answers zeros. An admin token may erase anyone, a \
                   user token only its own user (403 otherwise).\n\n\
                   The erase goes in transactions of at most `DELETE_BATCH_POINTS` points or \
                   `ERASE_BATCH_SESSIONS` sessions, so other users' writes are never held up \
                   by it; one cut short (the server stopped) keeps what it erased, and asking \
                   again finishes it. A write for the user while the erase runs is never \
                   refused for it: it lands before the erase reaches its session and is \
                   erased with it, or after and is kept, the whole session.",
    params(
        ("user_id" = String, Path, format = Uuid,
            description = "The user; anything that is not a UUID names no user (404)."),
        ("tokens" = Option<bool>, Query, description = "Also delete the user's API tokens \
            (admin tokens only; 403 for a user token). Accepts `true`/`false`, `1`/`0`, \
            `yes`/`no`. Default `false`."),
    ),
    responses(
        (status = 200, description = "Erased; the counts of what went (zeros when nothing \
            was stored).", body = Erased,
            example = json!({"sessions": 12, "points": 86400})),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn erase_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let user = Uuid::parse_str(&path).map_err(|_| ApiError::NotFound("Not found.".into()))?;
    let mut errors = Map::new();
    let tokens = bool_param(&params, "tokens", &mut errors);
    check(errors)?;
    caller.authorize_user(user)?;
    if tokens {
        caller.require_admin()?;
    }
    let limits = limits(&state);
    let erased = state
        .heavy
        .run(move |conn| erasure::erase_user(conn, user, tokens, limits))
        .await?;
    state.queries.forget_user(user).await;
    Ok(HttpResponse::Ok().json(erased))
}

// ---------------------------------------------------------------------------------------
// What the document says of the parameters this handler reads from a raw map.

/// `DELETE /api/timeseries/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeDeletionParams {
    /// The user whose points are deleted.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Comma-separated patterns, as the query takes them: each a regular expression
    /// matched against the whole series name or, if it is not a valid one, a `*` glob.
    /// At most 32 patterns of 256 characters. Default: every series.
    #[param(example = "session.urine.*")]
    series: Option<String>,
    /// Start of the range, inclusive.
    #[param(value_type = TimeParam)]
    start_time: String,
    /// End of the range, inclusive.
    #[param(value_type = TimeParam)]
    end_time: String,
}
