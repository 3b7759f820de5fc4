//! `seriesd token`: create, list and revoke API tokens, and `ensure-dev`, which gives a
//! newcomer's `make run` a development admin token.
//!
//! A new token's secret goes to standard output alone (so `TOKEN=$(seriesd token create
//! --admin)` works); everything else goes to standard error.

use crate::config::Settings;
use crate::domain::api_token::{Scope, TokenSecret};
use crate::error::BoxError;
use crate::services::tokens::{self, Revoked};
use diesel::pg::PgConnection;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `seriesd token ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown this once; only its hash is stored).
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["admin", "user"])))]
    Create {
        /// An admin token: everything, including the metric-type catalogue.
        #[arg(long)]
        admin: bool,
        /// A user token: only this user's data (a UUID).
        #[arg(long, value_name = "UUID")]
        user: Option<uuid::Uuid>,
        /// A name to recognise the token by in `token list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List every token (never their secrets).
    List,
    /// Revoke a token by id; every replica refuses it within a second.
    Revoke {
        /// The id shown by `token create` and `token list`.
        id: i64,
    },
    /// Make sure a development admin token exists in FILE (for `make run`): keeps the
    /// one there if this database still accepts it, else creates one and writes it.
    EnsureDev {
        /// Where the token is kept (readable by its owner only).
        #[arg(long, default_value = ".seriesd-dev-token")]
        file: PathBuf,
    },
}

/// Runs a `token` subcommand against `DATABASE_URL`.
pub fn run(settings: &Settings, command: TokenCommand) -> Result<(), BoxError> {
    let mut conn = crate::db::connect(settings.database_url.as_str())?;
    match command {
        TokenCommand::Create { admin, user, name } => {
            let scope = match (admin, user) {
                (true, None) => Scope::Admin,
                (false, Some(u)) => Scope::User(u),
                _ => return Err("give either --admin or --user UUID".into()),
            };
            let (row, secret) = tokens::create(&mut conn, scope, &name)?;
            eprintln!(
                "token {} created ({}{}); its secret, on standard output, is shown only this once",
                row.id,
                describe(scope),
                if name.is_empty() {
                    String::new()
                } else {
                    format!(", \"{name}\"")
                },
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", secret.expose())?;
            out.flush()?;
        }
        TokenCommand::List => {
            let rows = tokens::list(&mut conn)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:>6}  {:<5}  {:<36}  {:<20}  {:<20}  {:<20}  name",
                "id", "role", "user_id", "created_at", "last_used_at", "revoked_at"
            )?;
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                })
            };
            for r in rows {
                writeln!(
                    out,
                    "{:>6}  {:<5}  {:<36}  {:<20}  {:<20}  {:<20}  {}",
                    r.id,
                    r.role,
                    r.user_id.map_or("-".to_string(), |u| u.to_string()),
                    time(Some(r.created_at)),
                    time(r.last_used_at),
                    time(r.revoked_at),
                    r.name
                )?;
            }
        }
        TokenCommand::Revoke { id } => match tokens::revoke(&mut conn, id)? {
            Revoked::Now => eprintln!("token {id} revoked"),
            Revoked::Already => eprintln!("token {id} was already revoked"),
            Revoked::NoSuchToken => return Err(format!("no token {id}").into()),
        },
        TokenCommand::EnsureDev { file } => ensure_dev(&mut conn, settings, &file)?,
    }
    Ok(())
}

fn describe(scope: Scope) -> String {
    match scope {
        Scope::Admin => "admin".into(),
        Scope::User(u) => format!("user {u}"),
    }
}

/// Keeps or makes the development admin token in `file`, then says how to use it
/// (without printing the secret: terminal output ends up in logs and screenshots).
fn ensure_dev(conn: &mut PgConnection, settings: &Settings, file: &Path) -> Result<(), BoxError> {
    let existing = std::fs::read_to_string(file)
        .ok()
        .and_then(|text| TokenSecret::parse(text.trim()));
    let kept = match &existing {
        Some(secret) => tokens::is_active_admin(conn, secret)?,
        None => false,
    };
    if !kept {
        let (row, secret) = tokens::create(conn, Scope::Admin, "development (make run)")?;
        write_private(file, &format!("{}\n", secret.expose()))?;
        eprintln!(
            "created development admin token {} in {}",
            row.id,
            file.display()
        );
    }
    let base = format!("http://{}", settings.listen_addr);
    eprintln!(
        "\nEvery API call needs a token. The development admin token is in {file}; use it as:\n\
         \n    export TOKEN=$(cat {file})\
         \n    curl -H \"Authorization: Bearer $TOKEN\" {base}/api/metrictypes/\n\
         \nor paste it into the explorer, {base}/ui/, in a browser.\n\
         \nMake other tokens with `seriesd token create --admin` or `--user <uuid>`; \
         list them with `seriesd token list`, revoke with `seriesd token revoke <id>`.\n",
        file = file.display(),
    );
    Ok(())
}

/// Writes `text` to `path`, readable and writable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(path)?;
        // An existing file keeps its mode on open: narrow it.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(text.as_bytes())
    }
}
