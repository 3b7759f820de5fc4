//! The real application on port 0 in the test's own actix system, and clients that talk
//! to it with a token (or none).

use super::database::TestDb;
use diesel::PgConnection;
use serde_json::Value;
use seriesd::config::{DatabaseUrl, EnvSource, Settings};
use seriesd::domain::api_token::Scope;
use seriesd::startup::Application;
use std::io::{Read, Write};
use std::time::Duration;

/// The `detail` of every 403: a token may not do what it asks.
pub const FORBIDDEN: &str = "You do not have permission to perform this action.";

/// Days that reach every accepted year from now, both ways: tests post fixed dates.
pub const WIDE_WINDOW_DAYS: &str = "120000";

/// Settings for a test server on `db`, with extra variables applied.
pub fn settings_for(url: &DatabaseUrl, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.as_str().into()),
        ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
        ("WORKERS".into(), "2".into()),
        ("DB_POOL_SIZE".into(), "8".into()),
        // Fixtures are history (fixed dates from 1900 on): an import's window.
        ("WRITE_WINDOW_PAST_DAYS".into(), WIDE_WINDOW_DAYS.into()),
        ("WRITE_WINDOW_FUTURE_DAYS".into(), WIDE_WINDOW_DAYS.into()),
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

    /// `GET path` (a 200 is asserted): its `X-Cache` header and its body.
    pub async fn get_cached(&self, path: &str) -> (String, Value) {
        let mut resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{path}");
        (x_cache(&resp), resp.json().await.expect("a JSON body"))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialise");
        self.post_raw(path, bytes).await
    }

    /// `DELETE` with the admin token.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.client.delete(self.url(path)), None).await
    }

    /// `DELETE` with another token (or none).
    pub async fn delete_as(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        send(client_with(token).delete(self.url(path)), None).await
    }

    /// Asserts that `GET path` is a 400 whose body names `field` (with its messages).
    pub async fn assert_400_naming(&self, path: &str, field: &str) {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body[field].is_array(), "{path}: {body}");
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

/// The `X-Cache` header of a query's answer (`HIT` or `MISS`).
pub fn x_cache<S>(resp: &awc::ClientResponse<S>) -> String {
    resp.headers()
        .get("X-Cache")
        .expect("an X-Cache header")
        .to_str()
        .expect("an ASCII X-Cache header")
        .to_string()
}

/// Sends raw bytes over TCP and returns what came back before the server closed (or
/// `within` passed).
pub fn raw_exchange(address: &str, parts: &[(&[u8], Duration)], within: Duration) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    for (bytes, pause) in parts {
        // The server may already have given up on us.
        let _ = stream.write_all(bytes);
        std::thread::sleep(*pause);
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts a 429 whose `detail` names `setting` (`Request was throttled (SETTING)…`);
/// returns its `Retry-After`, at least 1.
pub async fn assert_throttled(resp: &mut awc::ClientResponse, setting: &str) -> u64 {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp
        .headers()
        .get("Retry-After")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = resp.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("Request was throttled ({setting})")),
        "{detail}"
    );
    retry
}
