//! Test helpers: a database of its own per test, and the real application on port 0.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;
use seriesd::config::{DatabaseUrl, EnvSource, Settings};
use seriesd::db::maintenance;
use seriesd::domain::api_token::Scope;
use seriesd::services::{seed, tokens};
use seriesd::startup::Application;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A TCP port nothing listens on right now (for servers and clusters a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server the tests create their databases on.
pub fn server_url() -> String {
    // Every test connects through here first: set OpenSSL up before libpq does, so that
    // the process does not crash at exit (see `seriesd::db::tls`).
    seriesd::db::tls::keep_openssl_until_exit();
    // No GSSAPI: libpq asks Kerberos for credentials on every connect (`gssencmode`
    // defaults to `prefer`), and Kerberos's exit-time destructors abort a process whose
    // pool thread is connecting while it exits. No test uses Kerberos.
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/postgres?gssencmode=disable".to_string()
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: DatabaseUrl,
}

impl TestDb {
    /// A fresh, empty database name (not created yet).
    pub fn unique_url() -> DatabaseUrl {
        let server = DatabaseUrl::parse(&server_url()).expect("TEST_DATABASE_URL");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("seriesd_test_{}_{}", now_secs(), &id[..12]);
        DatabaseUrl::parse(&server.with_database(&name)).expect("url")
    }

    /// Creates, migrates and seeds a database of its own.
    pub fn create() -> Self {
        sweep_leftovers();
        let url = Self::unique_url();
        maintenance::migrate(&url).expect("migrate test database");
        let mut conn = PgConnection::establish(url.as_str()).expect("connect");
        seed::seed_metric_types(&mut conn).expect("seed");
        Self {
            name: url.database_name().to_string(),
            url,
        }
    }

    /// A connection set up like the service's (UTC session zone: the query SQL relies on it).
    pub fn conn(&self) -> PgConnection {
        let mut conn =
            PgConnection::establish(self.url.as_str()).expect("connect to test database");
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "SET TimeZone = 'UTC'")
            .expect("set the session zone");
        conn
    }

    /// Creates a token in this database; returns its id and secret.
    pub fn token(&self, scope: Scope) -> (i64, String) {
        let (row, secret) = tokens::create(&mut self.conn(), scope, "test").expect("create token");
        (row.id, secret.expose().to_string())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

pub fn drop_database(name: &str) {
    if let Ok(mut admin) = PgConnection::establish(&server_url()) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}

/// Drops test databases left behind by runs that died (older than two hours).
fn sweep_leftovers() {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let Ok(mut admin) = PgConnection::establish(&server_url()) else {
        return;
    };
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'seriesd\\_test\\_%'",
    )
    .load(&mut admin)
    .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(7200);
    for n in names {
        let stamp = n
            .datname
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok());
        if stamp.is_some_and(|s| s < cutoff) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                n.datname
            ));
        }
    }
}

/// Settings for a test server on `db`, with extra variables applied.
pub fn settings_for(url: &DatabaseUrl, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.as_str().into()),
        ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
        ("WORKERS".into(), "2".into()),
        ("DB_POOL_SIZE".into(), "8".into()),
        (
            "REDIS_PREFIX".into(),
            format!("seriesd-test-{}", uuid::Uuid::new_v4().simple()),
        ),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    Settings::from_source(&EnvSource::from_pairs(vars)).expect("test settings")
}

/// The real application on a random port, with a database of its own. Its `client`
/// sends an admin token with every request.
pub struct TestApp {
    pub address: String,
    pub db: TestDb,
    pub client: awc::Client,
    pub admin_token: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::create();
        let (_, admin_token) = db.token(Scope::Admin);
        let settings = settings_for(&db.url, extra);
        let address = start_server(settings).await;
        Self {
            address,
            db,
            client: client_with(Some(&admin_token)),
            admin_token,
        }
    }

    /// A new user token for `user`.
    pub fn user_token(&self, user: uuid::Uuid) -> String {
        self.db.token(Scope::User(user)).1
    }

    /// `GET` with another token (or none).
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        send(client_with(token).get(self.url(path)), None).await
    }

    /// `POST` of a JSON body with another token (or none).
    pub async fn post_as(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        send(
            client_with(token)
                .post(self.url(path))
                .insert_header(("content-type", "application/json")),
            Some(serde_json::to_vec(body).expect("serialise")),
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(self.url(path)), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialise");
        self.post_raw(path, bytes).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        send(
            self.client
                .post(self.url(path))
                .insert_header(("content-type", "application/json")),
            Some(body),
        )
        .await
    }

    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }
}

/// Starts the application in the current actix system; returns its base URL.
pub async fn start_server(settings: Settings) -> String {
    let app = Application::build(settings)
        .await
        .expect("build application");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    address
}

/// A client without a token.
pub fn client() -> awc::Client {
    client_with(None)
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with(token: Option<&str>) -> awc::Client {
    let mut builder = awc::Client::builder().timeout(Duration::from_secs(120));
    if let Some(token) = token {
        builder = builder.add_default_header(("authorization", format!("Bearer {token}")));
    }
    builder.finish()
}

/// Sends a request; returns the status and the JSON body (`Value::Null` if none).
pub async fn send(req: awc::ClientRequest, body: Option<Vec<u8>>) -> (u16, Value) {
    let mut resp = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    }
    .expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(512 * 1024 * 1024).await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Counts rows with a SQL query returning one bigint column named `n`.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .expect("count query")
        .n
}
