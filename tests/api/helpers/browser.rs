//! A headless Chromium for the explorer's tests, driven through `chromedriver` with the
//! W3C WebDriver protocol: JSON over HTTP, spoken with `awc` (already the tests' client),
//! so the tests bring no other HTTP client, runtime or TLS stack. Each browser has its
//! own chromedriver on a free port, its own profile and its own download folder, and
//! records the console and the network (`goog:loggingPrefs`).

use super::server_process::free_port;
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long [`Browser::wait_for`] waits for the page.
const PATIENCE: Duration = Duration::from_secs(30);

/// The first of `names` found on `PATH` (or the variable `env`, if set).
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A browser session; [`Browser::quit`] ends it, and dropping it stops its driver.
pub struct Browser {
    driver: Child,
    session: String,
    base: String,
    client: awc::Client,
    /// The browser's profile and download folders, removed on drop.
    folder: PathBuf,
}

impl Browser {
    /// A new headless browser of `width` × `height` CSS pixels, or `None` (after one line
    /// saying so) where Chromium or chromedriver is not installed.
    pub async fn start(width: u32, height: u32) -> Option<Self> {
        let (Some(chromium), Some(chromedriver)) = (
            program(
                "CHROME_BIN",
                &["chromium", "chromium-browser", "google-chrome"],
            ),
            program("CHROMEDRIVER", &["chromedriver"]),
        ) else {
            println!(
                "skipped: chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let folder = std::env::temp_dir().join(format!("seriesd-browser-{}", uuid::Uuid::new_v4()));
        let downloads = folder.join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"), "--hide-scrollbars",
                    format!("--user-data-dir={}", folder.join("profile").display()),
                    // Nothing but the page under test may reach the network.
                    "--no-first-run", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--disable-default-apps", "--disable-extensions",
                    "--lang=en-GB",
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let mut browser = Self {
            driver,
            session: String::new(),
            base,
            client,
            folder,
        };
        let deadline = Instant::now() + PATIENCE;
        let answer = loop {
            match browser
                .try_send("POST", "/session", Some(&capabilities))
                .await
            {
                Ok(answer) => break answer,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        browser.session = answer["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Some(browser)
    }

    /// Where downloads land.
    pub fn downloads(&self) -> PathBuf {
        self.folder.join("downloads")
    }

    /// One WebDriver command; its `value`, or the error it answered (or why none came).
    async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url),
        };
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|e| e.to_string())?;
        let bytes = response
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let value = answer["value"].clone();
        if response.status().is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {path}: {} {value}", response.status()))
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.try_send(method, &path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.send("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` until it returns something other than `null`, `false` or `""`;
    /// panics, naming `what`, when that does not happen in time.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.execute(script, json!([])).await;
            if !matches!(&value, Value::Null | Value::Bool(false)) && value.as_str() != Some("") {
                return value;
            }
            assert!(Instant::now() < deadline, "waited in vain for {what}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects (the first one).
    pub async fn find(&self, css: &str) -> Value {
        let found = self
            .send(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        json!({ ELEMENT: found[ELEMENT] })
    }

    fn element_path(element: &Value, action: &str) -> String {
        format!("/element/{}/{action}", element[ELEMENT].as_str().unwrap())
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.send(
            "POST",
            &Self::element_path(&element, "click"),
            Some(json!({})),
        )
        .await;
    }

    /// Empties the field `css`, then types `text` into it as a user would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.send(
            "POST",
            &Self::element_path(&element, "clear"),
            Some(json!({})),
        )
        .await;
        if !text.is_empty() {
            self.send(
                "POST",
                &Self::element_path(&element, "value"),
                Some(json!({ "text": text })),
            )
            .await;
        }
    }

    /// Picks the option `value` of the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    /// Presses the mouse at `from` and releases it at `to`, both offsets in CSS pixels
    /// from the centre of the element `css`.
    pub async fn drag(&self, css: &str, from: (i64, i64), to: (i64, i64)) {
        let element = self.find(css).await;
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": element, "x": from.0, "y": from.1, "duration": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": element, "x": (from.0 + to.0) / 2, "y": to.1, "duration": 100},
                {"type": "pointerMove", "origin": element, "x": to.0, "y": to.1, "duration": 100},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.send("POST", "/actions", Some(actions)).await;
        self.send("DELETE", "/actions", None).await;
    }

    /// Moves the mouse to `(x, y)` CSS pixels of the viewport.
    pub async fn hover_at(&self, x: i64, y: i64) {
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "origin": "viewport", "x": x, "y": y, "duration": 50}],
        }]});
        self.send("POST", "/actions", Some(actions)).await;
    }

    /// Resizes the window to `width` × `height`.
    pub async fn resize(&self, width: u32, height: u32) {
        self.send(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.send("GET", "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    /// The entries of a log (`browser`: the console; `performance`: DevTools events)
    /// since the last call.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        let entries = self
            .send("POST", "/se/log", Some(json!({ "type": kind })))
            .await;
        entries.as_array().cloned().unwrap_or_default()
    }

    /// Every URL the page asked for since the last call (DevTools' `requestWillBeSent`).
    pub async fn requested_urls(&self) -> Vec<String> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|entry| {
                let message: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
                let event = &message["message"];
                (event["method"] == "Network.requestWillBeSent")
                    .then(|| event["params"]["request"]["url"].as_str().map(String::from))?
            })
            .collect()
    }
}

impl Drop for Browser {
    /// Ends the session (so chromedriver closes Chromium: a test that failed half-way
    /// leaves no browser behind), then stops the driver and removes the folders.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            let host = self.base.trim_start_matches("http://");
            if let Ok(mut stream) = std::net::TcpStream::connect(host) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let _ = stream.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
