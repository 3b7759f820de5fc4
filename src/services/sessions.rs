//! Sessions once stored: a user's list, one session's contents, and deletion of a
//! session with its points (which makes the user's cached answers unreachable).

use crate::db::generations;
use crate::db::sessions::{self, SessionRow};
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use diesel::Connection;
use diesel::pg::PgConnection;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A session as the list shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// When the session started, as last posted; `null` if never given.
    #[schema(format = DateTime)]
    pub start_ts: Option<String>,
    /// When the session was first posted.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<SessionRow> for SessionView {
    fn from(r: SessionRow) -> Self {
        Self {
            session_id: r.session_id,
            user_id: r.user_id,
            start_ts: r.start_ts.map(format_utc),
            created_at: format_utc(r.created_at),
        }
    }
}

/// What a session holds of one series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesSummary {
    pub series: String,
    /// Points of this series in the session.
    pub count: i64,
    #[schema(format = DateTime)]
    pub first_time: String,
    #[schema(format = DateTime)]
    pub last_time: String,
}

/// One session with a summary of its points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    /// The number of points, all series together.
    pub points: i64,
    /// The time of the first point; `null` when the session holds none.
    #[schema(format = DateTime)]
    pub first_time: Option<String>,
    /// The time of the last point; `null` when the session holds none.
    #[schema(format = DateTime)]
    pub last_time: Option<String>,
    /// By series name.
    pub series: Vec<SeriesSummary>,
}

fn not_found(session: Uuid) -> ApiError {
    ApiError::NotFound(format!("No session {session}."))
}

/// The number of `user`'s sessions and one page of them, newest first.
pub fn list(
    conn: &mut PgConnection,
    user: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<SessionView>), ApiError> {
    let total = sessions::count_for_user(conn, user)?;
    let rows = sessions::page_for_user(conn, user, limit, offset)?;
    Ok((total, rows.into_iter().map(Into::into).collect()))
}

/// The session, if it exists and `visible_to` (a user token's user; `None`: anyone) may
/// see it. Another user's session is answered exactly like one that does not exist.
fn visible(
    conn: &mut PgConnection,
    session: Uuid,
    visible_to: Option<Uuid>,
) -> Result<SessionRow, ApiError> {
    sessions::get(conn, session)?
        .filter(|row| visible_to.is_none_or(|u| u == row.user_id))
        .ok_or_else(|| not_found(session))
}

/// The session, if it exists and `visible_to` may see it (see [`visible`]): read where
/// the session is known at once (the primary), to learn whose data [`detail`] reads.
pub fn locate(
    conn: &mut PgConnection,
    session: Uuid,
    visible_to: Option<Uuid>,
) -> Result<SessionRow, ApiError> {
    visible(conn, session, visible_to)
}

/// The session `row` ([`locate`]) and, per series, how many points it holds and their
/// time span.
pub fn detail(conn: &mut PgConnection, row: &SessionRow) -> Result<SessionDetail, ApiError> {
    let row = row.clone();
    let stats = match generations::span(conn, row.user_id)? {
        Some(span) => sessions::series_stats(conn, row.user_id, row.session_id, span.bounds())?,
        None => Vec::new(),
    };
    let first = stats.iter().map(|s| s.first_time).min();
    let last = stats.iter().map(|s| s.last_time).max();
    Ok(SessionDetail {
        points: stats.iter().map(|s| s.count).sum(),
        first_time: first.map(format_utc),
        last_time: last.map(format_utc),
        series: stats
            .into_iter()
            .map(|s| SeriesSummary {
                series: s.series,
                count: s.count,
                first_time: format_utc(s.first_time),
                last_time: format_utc(s.last_time),
            })
            .collect(),
        session: row.into(),
    })
}

/// Deletes the session and its points in one transaction, under the session's ingest
/// lock (a concurrent post of the same session waits, then recreates it), and bumps the
/// owner's generation. Returns how many points were deleted. `visible_to` as for
/// [`detail`].
pub fn delete(
    conn: &mut PgConnection,
    session: Uuid,
    visible_to: Option<Uuid>,
) -> Result<usize, ApiError> {
    conn.transaction(|conn| {
        sessions::lock_session_ids(conn, &[session])?;
        let row = visible(conn, session, visible_to)?;
        let within = generations::span(conn, row.user_id)?.map(|s| s.bounds());
        if let Some(within) = within {
            crate::db::rollups::invalidate_session(conn, row.user_id, session, within)?;
        }
        let (_, points) = sessions::delete(conn, row.user_id, &[session], within)?;
        generations::bump(conn, &[row.user_id])?;
        Ok(points)
    })
}
