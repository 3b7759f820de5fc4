//! The `seriesd` command line, like Django's `manage.py`.

use clap::{Parser, Subcommand};
use seriesd::config::Settings;
use seriesd::db::maintenance;
use seriesd::error::BoxError;
use seriesd::services::{demo_data, seed};
use seriesd::startup::Application;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "seriesd", version, about = "A time-series metrics backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (applies pending migrations first unless AUTO_MIGRATE=false).
    Serve {
        /// Do not apply migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Create the database if missing, then apply pending migrations.
    Migrate,
    /// Insert the seed metric types that are missing (idempotent).
    Seed {
        /// Also load half a year of a demo user's sessions, up to now (idempotent: a
        /// second load adds only the hours that came since).
        #[arg(long)]
        demo: bool,
    },
    /// Load generated sessions through the HTTP API of a running server.
    Stress(seriesd::stress::StressArgs),
    /// Manage API tokens: create, list, revoke, ensure-dev.
    #[command(subcommand)]
    Token(seriesd::token_command::TokenCommand),
    /// Print the OpenAPI document (JSON) on standard output; `make openapi` writes it to
    /// openapi/openapi.json. Needs no database.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The document depends on the code only: no settings, no database.
    if let Command::Openapi = cli.command {
        use std::io::Write;
        let written = seriesd::routes::api_doc::json()
            .map_err(|e| e.to_string())
            .and_then(|text| {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())
            });
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let mut settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    seriesd::telemetry::init();
    let result = match cli.command {
        Command::Serve { no_migrate } => {
            if no_migrate {
                settings.auto_migrate = false;
            }
            serve(settings)
        }
        Command::Migrate => maintenance::migrate(&settings.database_url).map(|applied| {
            println!("migrations applied: {applied}");
        }),
        Command::Seed { demo } => seed_command(&settings, demo),
        Command::Stress(args) => seriesd::stress::run(args),
        Command::Token(command) => seriesd::token_command::run(&settings, command),
        Command::Openapi => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> Result<(), BoxError> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn seed_command(settings: &Settings, demo: bool) -> Result<(), BoxError> {
    let mut conn = seriesd::db::connect(settings.database_url.as_str())?;
    let inserted = seed::seed_metric_types(&mut conn)?;
    println!("metric types inserted: {inserted}");
    if demo {
        let pool = seriesd::db::build_pool(settings, 1);
        let load = demo_data::load(&pool, chrono::Utc::now(), settings.rollup_append_hours)?;
        let user = demo_data::DEMO_USER;
        println!(
            "demo user {user}: {} sessions, {} points ({} new, {} changed)",
            load.sessions, load.points, load.inserted, load.updated
        );
        // The link names a loopback address when the service listens on all of them.
        let mut address = settings.listen_addr;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        println!("explore it at http://{address}/ui/#user_id={user} with a token");
    }
    Ok(())
}
