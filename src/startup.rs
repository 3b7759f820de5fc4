//! Builds the running service: pools, shared state, background jobs and the HTTP
//! server. `main` and the integration tests use the same [`Application`].

use crate::cache::Cache;
use crate::config::{AuthMode, Settings};
use crate::db::{self, DbPool, maintenance, partitions::PartitionManager};
use crate::jobs::{self, Job, JobStats};
use crate::metrics::Metrics;
use crate::routes;
use crate::services::catalogue::Catalogue;
use crate::services::ingest::Ingestor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::middleware::{Condition, NormalizePath, TrailingSlash};
use actix_web::{App, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// Hours the rollup job refreshes per transaction.
const ROLLUP_BATCH: i64 = 500;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Shared by every request handler.
pub struct AppState {
    pub settings: Settings,
    pub pool: DbPool,
    pub partitions: PartitionManager,
    pub catalogue: Catalogue,
    pub ingestor: Ingestor,
    pub cache: Cache,
    pub metrics: Arc<Metrics>,
    /// Each background job's statistics, by name.
    pub jobs: Vec<(&'static str, Arc<JobStats>)>,
    /// Token lookups and rate limits.
    pub auth: crate::auth::Authenticator,
    /// Uncached queries being computed, at most `QUERY_CONCURRENCY` (see
    /// `routes::timeseries`).
    pub query_gate: Arc<tokio::sync::Semaphore>,
}

/// A built, bound, not yet awaited server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Migrates (unless `AUTO_MIGRATE=false`), builds the state, binds the listener and
    /// starts background jobs. Must be called inside an actix system.
    pub async fn build(settings: Settings) -> Result<Self, BoxError> {
        if settings.auto_migrate {
            let url = settings.database_url.clone();
            let applied =
                web::block(move || maintenance::migrate(&url).map_err(|e| e.to_string())).await??;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
        }
        let pool = db::build_pool(&settings, settings.db_pool_size);
        let job_pool = db::build_pool(&settings, db::JOB_CONNECTIONS);
        let partitions = PartitionManager::new();
        let catalogue = Catalogue::new();
        {
            let (pool, partitions, catalogue) =
                (pool.clone(), partitions.clone(), catalogue.clone());
            let loaded = web::block(move || -> Result<(), String> {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                partitions.mode(&mut conn).map_err(|e| e.to_string())?;
                catalogue.reload(&mut conn).map_err(|e| e.to_string())?;
                Ok(())
            })
            .await?;
            if let Err(e) = loaded {
                tracing::warn!(error = %e, "database not reachable at start; serving anyway");
            }
        }
        let ingestor = Ingestor::start(
            pool.clone(),
            partitions.clone(),
            settings.ingest_writers,
            settings.ingest_batch_points,
            settings.rollup_append_hours,
        );
        let jobs = spawn_background_jobs(&settings, &job_pool, &partitions, &catalogue);

        let listener = TcpListener::bind(settings.listen_addr)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let shutdown = settings.shutdown_timeout;
        let cache = Cache::new(settings.redis_url.as_deref(), settings.redis_timeout);
        tracing::info!(backend = cache.backend(), "query cache");
        announce_security(&settings);
        let auth = crate::auth::Authenticator::new(&settings);
        let cors_origins = settings.cors_allowed_origins.clone();
        let keep_alive = if settings.keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            KeepAlive::Timeout(settings.keep_alive)
        };
        let (request_timeout, disconnect_timeout) = (
            settings.client_request_timeout,
            settings.client_disconnect_timeout,
        );
        let query_gate = Arc::new(tokio::sync::Semaphore::new(settings.query_concurrency));
        let state = web::Data::new(AppState {
            metrics: Arc::new(Metrics::default()),
            jobs,
            cache,
            settings,
            pool,
            partitions,
            catalogue,
            ingestor,
            auth,
            query_gate,
        });
        spawn_rate_limit_sweeper(state.clone());
        let server = HttpServer::new(move || {
            let cors = crate::headers::cors(&cors_origins);
            // Outermost last: the request log sees every answer, security headers go on
            // every answer (CORS preflights and 401s included), CORS answers preflights
            // before authentication, and authentication sees the normalised path.
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    crate::error::ApiError::BadRequest(format!("Invalid query string: {e}")).into()
                }))
                .wrap(actix_web::middleware::from_fn(crate::auth::authenticate))
                .wrap(NormalizePath::new(TrailingSlash::Always))
                .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
                .wrap(crate::headers::security_headers())
                .wrap(actix_web::middleware::from_fn(
                    crate::telemetry::log_request,
                ))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .keep_alive(keep_alive)
        .client_request_timeout(request_timeout)
        .client_disconnect_timeout(disconnect_timeout)
        .listen(listener)?
        .workers(workers)
        .shutdown_timeout(shutdown.as_secs())
        .run();
        tracing::info!(port, "listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Says at start how requests are authenticated; loudly when they are not.
fn announce_security(settings: &Settings) {
    match settings.auth {
        AuthMode::Required => tracing::info!(
            rate_limit_per_sec = settings.rate_limit_per_sec,
            rate_limit_burst = settings.rate_limit_burst,
            "authentication required: every route but /health/, /metrics/, /api/schema/ and /redoc/ needs a token"
        ),
        AuthMode::Disabled => tracing::warn!(
            "AUTH=disabled: AUTHENTICATION IS OFF. Anyone who can reach this server can read, \
             write and delete every user's data and change the catalogue. Never run it like \
             this outside a private test machine."
        ),
    }
    if settings.cors_allowed_origins != crate::config::CorsOrigins::Off {
        tracing::info!(origins = ?settings.cors_allowed_origins, "CORS enabled");
    }
}

/// Now and then forgets the rate-limit state of tokens that have their whole allowance
/// back, so the limiter's memory follows the tokens in use.
fn spawn_rate_limit_sweeper(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            state.auth.limits.forget_idle();
        }
    });
}

/// Background jobs (on `pool`, the jobs' own): the catalogue version poll, the partition
/// pre-maker, the rollup refresh and vacuum, and retention.
fn spawn_background_jobs(
    settings: &Settings,
    pool: &DbPool,
    partitions: &PartitionManager,
    catalogue: &Catalogue,
) -> Vec<(&'static str, Arc<JobStats>)> {
    let (p, c) = (pool.clone(), catalogue.clone());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let c = c.clone();
            let r = db::run(&p, move |conn| Ok(c.refresh(conn)?)).await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "catalogue refresh failed");
            }
        }
    });
    let parts = partitions.clone();
    let ahead = i64::from(settings.partition_premake_weeks);
    let premake = Arc::new(JobStats::default());
    jobs::spawn(
        pool.clone(),
        Job {
            name: "partition-premake",
            quiet: false,
            lock_key: 7_236_101,
            period: settings.maintenance_period,
            run: Arc::new(move |conn| {
                let first = crate::db::partitions::week_of(chrono::Utc::now());
                let weeks = (first..=first + ahead).collect();
                let created = parts.ensure_weeks(conn, &weeks)?;
                crate::db::maintenance::prune_job_runs(conn)?;
                Ok(if created > 0 {
                    format!("{created} weekly partitions made ahead")
                } else {
                    String::new()
                })
            }),
        },
        premake.clone(),
    );
    let mut stats = vec![("partition-premake", premake)];
    let rollups = Arc::new(JobStats::default());
    let budget = settings.rollup_budget;
    jobs::spawn(
        pool.clone(),
        Job {
            name: "rollup-refresh",
            lock_key: crate::db::rollups::REFRESH_LOCK,
            period: settings.rollup_period,
            quiet: true,
            // Batches until nothing is pending or the run has used its budget (see
            // rollups::refresh_run): under a write burst the job takes a bounded share of
            // the CPU (answers stay exact meanwhile: hours awaiting refresh are read raw).
            // The sweep's cursor lives across runs (see rollups::Cursor).
            run: Arc::new({
                let cursor = std::sync::Mutex::new(crate::db::rollups::Cursor::default());
                move |conn| {
                    let mut cursor = cursor.lock().unwrap_or_else(|e| e.into_inner());
                    let refreshed =
                        crate::db::rollups::refresh_run(conn, ROLLUP_BATCH, &mut cursor, budget)?;
                    Ok(if refreshed > 0 {
                        format!("{refreshed} hours refreshed")
                    } else {
                        String::new()
                    })
                }
            }),
        },
        rollups.clone(),
    );
    stats.push(("rollup-refresh", rollups));
    // A job of its own, so that the refresh goes on while a vacuum runs (seconds on
    // tables of millions of rows).
    if let Some(period) = settings.rollup_vacuum_period {
        let vacuum = Arc::new(JobStats::default());
        jobs::spawn(
            pool.clone(),
            Job {
                name: "rollup-vacuum",
                quiet: true,
                lock_key: 7_236_104,
                period,
                run: Arc::new(|conn| {
                    let vacuumed = crate::db::rollups::vacuum(conn)?;
                    Ok(if vacuumed.is_empty() {
                        String::new()
                    } else {
                        format!("vacuumed {}", vacuumed.join(", "))
                    })
                }),
            },
            vacuum.clone(),
        );
        stats.push(("rollup-vacuum", vacuum));
    }
    if let Some(weeks) = settings.retention_weeks {
        let parts = partitions.clone();
        let retention = Arc::new(JobStats::default());
        jobs::spawn(
            pool.clone(),
            Job {
                name: "retention",
                quiet: false,
                lock_key: 7_236_102,
                period: settings.maintenance_period,
                run: Arc::new(move |conn| {
                    let cutoff = chrono::Utc::now() - chrono::TimeDelta::weeks(i64::from(weeks));
                    let dropped = crate::db::partitions::drop_older_than(conn, &parts, cutoff)?;
                    if !dropped.is_empty() {
                        tracing::info!(count = dropped.len(), partitions = ?dropped, "retention dropped old weeks");
                    }
                    Ok(if dropped.is_empty() {
                        String::new()
                    } else {
                        format!("dropped {}", dropped.join(", "))
                    })
                }),
            },
            retention.clone(),
        );
        stats.push(("retention", retention));
    }
    stats
}
