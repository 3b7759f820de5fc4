//! The explorer page as the tests read and drive it: the seeded month, the page's
//! drawings (`data-` attributes of its charts, its tables, its error messages), and the
//! assertions every browser test shares.

use crate::helpers::{Browser, TestApp, ingest};
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const GUT: &str = "session.gut_health_score";
pub const COLOUR: &str = "session.urine.color";
pub const NOTE: &str = "session.example.series";
pub const MARCH_START: &str = "2025-03-01";
pub const MARCH_END: &str = "2025-03-31T23:59:59Z";
/// The notes of March 3, 9, 15, 21 and 27.
pub const NOTES: [&str; 5] = ["a", "b", "a", "c", "b"];

/// A user with one session a day from 28 February to 1 April 2025: in March a gut score
/// every six hours (124), a colour at noon (31) and five notes; one score on each day
/// around it.
pub async fn seeded_user(app: &TestApp) -> Uuid {
    let user = Uuid::new_v4();
    let first = NaiveDate::from_ymd_opt(2025, 2, 28).unwrap();
    for offset in 0..33 {
        let date = first + chrono::Days::new(offset);
        let at = |h: u32| format!("{date}T{h:02}:00:00Z");
        let mut points: Vec<(&str, String, Value)> = Vec::new();
        if date.month() == 3 {
            let d = date.day();
            for (slot, h) in [0, 6, 12, 18].into_iter().enumerate() {
                let score = ((d as usize * 4 + slot) % 10) as f64 + 0.5;
                points.push((GUT, at(h), json!({"value": score})));
            }
            points.push((
                COLOUR,
                at(12),
                json!({"r": d * 8, "g": 100, "b": 200 - d * 5}),
            ));
            if let Some(k) = [3, 9, 15, 21, 27].iter().position(|&n| n == d) {
                points.push((NOTE, at(20), json!({"value": NOTES[k]})));
            }
        } else {
            points.push((
                GUT,
                at(if date.month() == 2 { 12 } else { 6 }),
                json!({"value": 5}),
            ));
        }
        ingest(app, user, Uuid::new_v4(), &points).await;
    }
    user
}

/// How many times the page has drawn its results.
pub async fn renders(browser: &Browser) -> i64 {
    let n = browser
        .execute(
            "return document.querySelector('#results').dataset.renders || '0'",
            json!([]),
        )
        .await;
    n.as_str().unwrap().parse().unwrap()
}

/// Waits until the page has drawn again since `before`.
pub async fn drawn_after(browser: &Browser, before: i64) {
    let script = format!(
        "return Number(document.querySelector('#results').dataset.renders || 0) > {before}"
    );
    browser.wait_for("the results to be drawn", &script).await;
}

/// Clicks `css` and waits for the page to draw its results again.
pub async fn click_and_draw(browser: &Browser, css: &str) {
    let before = renders(browser).await;
    browser.click(css).await;
    drawn_after(browser, before).await;
}

/// `data-<attr>` of the chart of `series`, as a number.
pub async fn chart(browser: &Browser, series: &str, attr: &str) -> i64 {
    let script = format!(
        "const c = document.querySelector('.card[data-series=\"{series}\"] .chart');\
         return c ? c.dataset.{attr} : null"
    );
    let value = browser
        .wait_for(&format!("the chart of {series}"), &script)
        .await;
    value.as_str().unwrap().parse().unwrap()
}

/// The table under the chart of `series`: its header, then its rows, cell by cell.
pub async fn table(browser: &Browser, series: &str) -> Vec<Vec<String>> {
    let script = format!(
        "const t = document.querySelector('.card[data-series=\"{series}\"] .table-box table');\
         return [...t.rows].map(r => [...r.cells].map(c => c.textContent))"
    );
    serde_json::from_value(browser.execute(&script, json!([])).await).unwrap()
}

/// Whether a cell shows `value`: the same number, the same text, or nothing for null.
fn shows(cell: &str, value: &Value) -> bool {
    match value {
        Value::Number(n) => cell.parse::<f64>().ok() == n.as_f64(),
        Value::String(s) => cell == s,
        Value::Null => cell.is_empty(),
        other => *cell == *other.to_string(),
    }
}

/// Asserts that `table` holds exactly the rows of an API answer (`time` or `bucket`,
/// the value's fields by the header's names, the session's first 8 characters).
pub fn assert_table_is(table: &[Vec<String>], answer: &Value) {
    let rows = answer.as_array().unwrap();
    let header = &table[0];
    assert_eq!(
        table.len() - 1,
        rows.len(),
        "rows: {table:?}\nanswer: {answer}"
    );
    for (cells, row) in table[1..].iter().zip(rows) {
        let time = row.get("time").or(row.get("bucket")).unwrap();
        assert_eq!(&cells[0], time.as_str().unwrap());
        for (name, cell) in header.iter().zip(cells).skip(1) {
            let expected = match name.as_str() {
                "session" => json!(row["session_id"].as_str().unwrap()[..8]),
                field => match &row["value"] {
                    Value::Object(o) => o.get(field).cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                },
            };
            assert!(
                shows(cell, &expected),
                "{name}: {cell} ≠ {expected} in {row}"
            );
        }
    }
}

/// Asserts that the page asked nothing of another host and wrote no error to the
/// console, but for the refusals listed in `expected` (Chromium logs each 4xx as
/// `... the server responded with a status of 400 ...`).
pub async fn assert_no_stray_request_or_console_error(
    browser: &Browser,
    app: &TestApp,
    expected: &[u16],
) {
    let origin = format!("{}/", app.address);
    for url in browser.requested_urls().await {
        // Chromium's own pages (its first tab's) are no request of the page's.
        if url.starts_with("chrome://") {
            continue;
        }
        assert!(
            url.starts_with(&origin)
                || url.starts_with("data:")
                || url.starts_with(&format!("blob:{origin}")),
            "a request to another host: {url}"
        );
    }
    let resources = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            json!([]),
        )
        .await;
    for url in resources.as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&origin), "{url}");
    }
    for entry in browser.log("browser").await {
        let message = entry["message"].as_str().unwrap_or_default();
        let refusal = expected
            .iter()
            .any(|status| message.contains(&format!("status of {status} ")));
        assert!(
            entry["level"] != "SEVERE" || (entry["source"] == "network" && refusal),
            "console: {entry}"
        );
    }
}

/// Fills the query form and shows it: `series` over March, with `interval`.
pub async fn show(browser: &Browser, user: Uuid, series: &str, interval: &str) {
    browser.type_into("#user_id", &user.to_string()).await;
    browser.type_into("#series", series).await;
    browser.select("#interval", interval).await;
    browser.type_into("#start_time", MARCH_START).await;
    browser.type_into("#end_time", MARCH_END).await;
    click_and_draw(browser, "#query button[type=submit]").await;
}

/// The CSV the page downloaded as `name`, once it is complete.
pub async fn downloaded(browser: &Browser, name: &str) -> String {
    let path = browser.downloads().join(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name} was not downloaded");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the text beside the field `field` (`#err-<field>`) holds `expected`.
pub async fn assert_error_beside(browser: &Browser, field: &str, expected: &str) {
    let script = format!("return document.querySelector('#err-{field}').textContent");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = browser.execute(&script, json!([])).await;
        let shown = shown.as_str().unwrap();
        if shown.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "beside {field}: {shown:?}, not {expected:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether some tag of `html` has an event handler attribute (` onclick=`, ...), which
/// the policy would refuse to run.
pub fn has_handler_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}
