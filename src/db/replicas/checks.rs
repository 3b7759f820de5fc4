//! The health check of each replica: a task on the server's runtime that, every
//! `REPLICA_CHECK_INTERVAL_MS`, reads the primary's flushed WAL position and then the
//! replica's replay position on connections of its own, and sets the replica's state.
//! A check that fails or gets no answer within `REPLICA_TIMEOUT_MS` marks the replica
//! down, and the next check comes after a delay that doubles up to
//! `REPLICA_RETRY_MAX_MS`.

use super::lag::{History, Lag};
use super::replica::{Replica, State};
use crate::config::ReplicaSettings;
use crate::db;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(QueryableByName)]
struct PrimaryRow {
    #[diesel(sql_type = BigInt)]
    lsn: i64,
    #[diesel(sql_type = BigInt)]
    system: i64,
}

#[derive(QueryableByName)]
struct ReplicaRow {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    replay: Option<i64>,
    #[diesel(sql_type = BigInt)]
    system: i64,
    #[diesel(sql_type = Bool)]
    citus: bool,
}

/// The primary's flushed WAL position, and its system identifier (a standby made from
/// it has the same).
const PRIMARY_SQL: &str =
    "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::bigint AS lsn,
        system_identifier AS system FROM pg_control_system()";
/// The replica's replay position, and whether it is a standby of the primary at all.
const REPLICA_SQL: &str = "SELECT pg_is_in_recovery() AS in_recovery,
        pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replay,
        system_identifier AS system,
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus
     FROM pg_control_system()";

/// What one check saw.
struct Seen {
    /// The primary's position, and when it was read (before the replica's).
    primary: (Instant, u64, i64),
    replica: ReplicaRow,
}

/// Why a check saw nothing.
enum Unseen {
    /// The primary did not answer: the replica's lag cannot be told (and reads, which
    /// start on the primary, fail anyway).
    Primary(String),
    Replica(String),
}

/// The check's own connections, kept between checks.
struct Probe {
    primary_url: String,
    replica_url: String,
    timeout: Duration,
    primary: Option<PgConnection>,
    replica: Option<PgConnection>,
}

impl Probe {
    fn connect(url: &str, timeout: Duration) -> Result<PgConnection, String> {
        let mut conn = db::connect(url).map_err(|e| e.to_string())?;
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET application_name = 'seriesd-replica-check'",
            timeout.as_millis()
        ))
        .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// Runs `sql` on the connection in `slot` (opened first if need be); drops the
    /// connection when it fails.
    fn query<R: QueryableByName<diesel::pg::Pg> + 'static>(
        slot: &mut Option<PgConnection>,
        url: &str,
        timeout: Duration,
        sql: &str,
    ) -> Result<R, String> {
        if slot.is_none() {
            *slot = Some(Self::connect(url, timeout)?);
        }
        let conn = slot.as_mut().ok_or("no connection")?;
        diesel::sql_query(sql).get_result(conn).map_err(|e| {
            *slot = None;
            e.to_string()
        })
    }

    fn see(&mut self) -> Result<Seen, Unseen> {
        let primary: PrimaryRow = Self::query(
            &mut self.primary,
            &self.primary_url,
            self.timeout,
            PRIMARY_SQL,
        )
        .map_err(Unseen::Primary)?;
        let at = Instant::now();
        let replica: ReplicaRow = Self::query(
            &mut self.replica,
            &self.replica_url,
            self.timeout,
            REPLICA_SQL,
        )
        .map_err(Unseen::Replica)?;
        Ok(Seen {
            primary: (at, primary.lsn.max(0) as u64, primary.system),
            replica,
        })
    }
}

/// Starts the checks of `replica` on the current runtime.
pub fn spawn(replica: Arc<Replica>, primary_url: String, settings: ReplicaSettings) {
    let probe = Arc::new(Mutex::new(Probe {
        primary_url,
        replica_url: replica.url.clone(),
        timeout: settings.timeout,
        primary: None,
        replica: None,
    }));
    actix_web::rt::spawn(async move {
        let mut history = History::new(settings.max_lag + 4 * settings.check_interval);
        let mut delay = Duration::ZERO;
        loop {
            tokio::time::sleep(delay).await;
            let probe = probe.clone();
            // A check still waiting for a dead server holds the probe: this one fails.
            let seen = tokio::time::timeout(
                settings.timeout,
                actix_web::web::block(move || match probe.try_lock() {
                    Ok(mut p) => p.see(),
                    Err(_) => Err(Unseen::Replica("the last check is still waiting".into())),
                }),
            )
            .await;
            let unseen = match seen {
                Ok(Ok(Ok(seen))) => {
                    let (state, lag, detail) = judge(&seen, &mut history, &settings);
                    replica.set(state, lag, detail);
                    delay = settings.check_interval;
                    continue;
                }
                Ok(Ok(Err(unseen))) => unseen,
                Ok(Err(e)) => Unseen::Replica(e.to_string()),
                Err(_) => Unseen::Replica(format!(
                    "no answer within {} ms (REPLICA_TIMEOUT_MS)",
                    settings.timeout.as_millis()
                )),
            };
            match unseen {
                Unseen::Primary(e) => {
                    tracing::debug!(replica = %replica.name, error = %e, "replica check: the primary did not answer");
                    delay = settings.check_interval;
                }
                Unseen::Replica(e) => {
                    let was_down = replica.status().state == State::Down;
                    let lag = replica.status().lag;
                    replica.set(State::Down, lag, Some(e));
                    delay = if was_down {
                        (delay * 2).clamp(settings.check_interval, settings.retry_max)
                    } else {
                        settings.check_interval
                    };
                }
            }
        }
    });
}

/// The replica's state from what a check saw.
fn judge(
    seen: &Seen,
    history: &mut History,
    settings: &ReplicaSettings,
) -> (State, Option<Duration>, Option<String>) {
    let (at, primary_lsn, primary_system) = seen.primary;
    history.record(at, primary_lsn);
    let r = &seen.replica;
    let unusable = |why: &str| (State::Unusable, None, Some(why.to_string()));
    if r.citus {
        return unusable("a Citus coordinator: reads stay on the primary");
    }
    if r.system != primary_system {
        return unusable("not a copy of the primary (another system identifier)");
    }
    if !r.in_recovery {
        return unusable("not in recovery: promoted, or not a standby");
    }
    let Some(replay) = r.replay else {
        return (
            State::Lagging,
            None,
            Some("has replayed nothing yet".into()),
        );
    };
    match history.lag(replay.max(0) as u64, Instant::now()) {
        Some(Lag::Behind(lag)) if lag <= settings.max_lag => (State::Ok, Some(lag), None),
        Some(Lag::Behind(lag)) => (
            State::Lagging,
            Some(lag),
            Some(format!(
                "more than REPLICA_MAX_LAG_MS ({} ms) behind the primary",
                settings.max_lag.as_millis()
            )),
        ),
        Some(Lag::AtLeast(lag)) => (
            State::Lagging,
            Some(lag),
            Some(format!(
                "at least {} ms behind the primary",
                lag.as_millis()
            )),
        ),
        None => (State::Lagging, None, None),
    }
}
