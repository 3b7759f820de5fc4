//! Builds the running service: pools, shared state, background jobs and the HTTP
//! server. `main` and the integration tests use the same [`Application`].

use crate::cache::Cache;
use crate::config::{AuthMode, Settings};
use crate::db::heavy::HeavyWork;
use crate::db::replicas::Reads;
use crate::db::{self, maintenance, partitions::PartitionManager};
use crate::error::BoxError;
use crate::jobs;
use crate::metrics::Metrics;
use crate::routes;
use crate::services::catalogue::Catalogue;
use crate::services::ingest::Ingestor;
use crate::services::query::cached::{Queries, QuerySettings};
use crate::services::token_slots::TokenSlots;
use crate::state::AppState;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::middleware::{Condition, NormalizePath, TrailingSlash};
use actix_web::{App, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

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
        if settings.compress_after_weeks.is_some()
            && partitions
                .known_mode()
                .is_some_and(|m| m != maintenance::StorageMode::Timescaledb)
        {
            tracing::warn!(
                "COMPRESS_AFTER_WEEKS is set but the points are not in a TimescaleDB hypertable: nothing is compressed"
            );
        }
        let jobs = jobs::spawn_all(&settings, &job_pool, &partitions, &catalogue);

        let listener = TcpListener::bind(settings.listen_addr)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let shutdown = settings.shutdown_timeout;
        let cache = Cache::new(settings.redis_url.as_deref(), settings.redis_timeout);
        tracing::info!(backend = cache.backend(), "query cache");
        announce_security(&settings);
        let auth = Arc::new(crate::auth::Authenticator::new(&settings, pool.clone()));
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
        let metrics = Arc::new(Metrics::default());
        let reads = Reads::new(
            &settings,
            pool.clone(),
            Some(db::build_query_pool(&settings)),
        );
        reads.start_checks();
        if !settings.replicas.urls.is_empty() {
            tracing::info!(
                replicas = settings.replicas.urls.len(),
                max_lag_ms = settings.replicas.max_lag.as_millis() as u64,
                "reads go to replicas that have replayed the user's writes"
            );
        }
        let queries = Queries {
            reads: reads.clone(),
            cache: cache.clone(),
            catalogue: catalogue.clone(),
            partitions: partitions.clone(),
            metrics: metrics.clone(),
            gate: Arc::new(tokio::sync::Semaphore::new(settings.query_concurrency)),
            settings: QuerySettings {
                prefix: settings.redis_prefix.clone(),
                ttl: settings.cache_ttl,
                ttl_recent: settings.cache_ttl_recent,
                queue_timeout: settings.query_queue_timeout,
                rollups: settings.rollups,
            },
        };
        let heavy = HeavyWork::new(
            pool.clone(),
            settings.heavy_connections,
            settings.heavy_queue_timeout,
        );
        let exports = TokenSlots::new(
            "MAX_EXPORTS_PER_TOKEN",
            "exports",
            settings.max_exports_per_token,
        );
        let bulk_loads = TokenSlots::new(
            "MAX_BULK_LOADS_PER_TOKEN",
            "bulk loads",
            settings.max_bulk_loads_per_token,
        );
        let proxies_data = web::Data::new(settings.trusted_proxies.clone());
        let (auth_data, metrics_data) = (
            web::Data::from(auth.clone()),
            web::Data::from(metrics.clone()),
        );
        let ingest_budget = crate::services::ingest::IngestBudget::new(
            settings.ingest_memory_bytes,
            settings.ingest_memory_wait,
        );
        let state = web::Data::new(AppState {
            ingest_budget,
            metrics,
            jobs,
            cache,
            settings,
            pool,
            reads,
            partitions,
            catalogue,
            ingestor,
            auth,
            queries,
            heavy,
            exports,
            bulk_loads,
        });
        spawn_rate_limit_sweeper(state.clone());
        let server = HttpServer::new(move || {
            let cors = crate::headers::cors(&cors_origins);
            // Outermost last: a HEAD answer loses its body whatever made it, the request
            // log sees every answer, security headers go on every answer (CORS
            // preflights and 401s included), CORS answers preflights before
            // authentication, and authentication sees the normalised path.
            App::new()
                .app_data(state.clone())
                .app_data(auth_data.clone())
                .app_data(metrics_data.clone())
                .app_data(proxies_data.clone())
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
                .wrap(actix_web::middleware::from_fn(
                    routes::head::drop_head_bodies,
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
    if !settings.trusted_proxies.is_empty() {
        tracing::info!(proxies = ?settings.trusted_proxies, "Forwarded / X-Forwarded-* headers trusted from these peers");
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
