//! The explorer (`/ui/`) in a real browser: headless Chromium, driven through
//! chromedriver, against the real server with seeded data. A token from the address's
//! fragment, a month of one series drawn with the API's numbers in the table, zoom by
//! dragging (the table and the CSV follow), sessions narrowing the view, buckets, `{r, g,
//! b}` and text series, and each API error next to its field; on every page, no request
//! to another host and no console error. Where Chromium or chromedriver is missing, the
//! browser tests print one `skipped:` line and pass. The page's files are checked
//! without a browser too, and `make run`'s demo user is drawn one click after its token
//! is pasted.

mod page;

use crate::helpers::{Browser, FORBIDDEN, TestApp, client, client_with, settings_for};
use diesel::connection::SimpleConnection;
use page::*;
use serde_json::json;
use seriesd::services::demo_data::{self, DEMO_DAYS, DEMO_USER};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[actix_web::test]
async fn a_month_of_points_is_drawn_with_the_apis_numbers_and_zooms() {
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    let app = TestApp::spawn().await;
    let user = seeded_user(&app).await;
    let token = app.user_token(user);
    browser.goto(&app.url(&format!("/ui/#token={token}"))).await;

    // The token from the fragment: kept in the tab, gone from the address, no cookie;
    // the catalogue's series are offered.
    browser
        .wait_for(
            "the catalogue",
            "return document.querySelectorAll('#series-list option').length === 4",
        )
        .await;
    let kept = browser
        .execute(
            "return [sessionStorage.getItem('seriesd.token'), location.href, document.cookie,\
             [...document.querySelectorAll('#series-list option')].map(o => o.value)]",
            json!([]),
        )
        .await;
    assert_eq!(kept[0], token);
    assert!(!kept[1].as_str().unwrap().contains(&token), "{}", kept[1]);
    assert_eq!(kept[2], "");
    assert_eq!(
        kept[3],
        json!([NOTE, GUT, COLOUR, "session.urine.night_count"])
    );

    // A month of one series: every point drawn, the table is the API's answer.
    show(&browser, user, GUT, "raw").await;
    assert_eq!(chart(&browser, GUT, "points").await, 124);
    assert_eq!(chart(&browser, GUT, "lines").await, 1);
    let points = |start: &str, end: &str| {
        format!(
            "/api/timeseries/points/?user_id={user}&series={GUT}&start_time={start}&end_time={end}\
             &max_points=2000&limit=10000"
        )
    };
    let (status, answer) = app
        .get_as(Some(&token), &points(MARCH_START, MARCH_END))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_table_is(&table(&browser, GUT).await, &answer["results"]);

    // The latest value and the sessions, newest first, 20 at a time.
    let (_, latest) = app
        .get_as(
            Some(&token),
            &format!("/api/timeseries/latest/?user_id={user}&series={GUT}"),
        )
        .await;
    let shown = browser
        .wait_for(
            "the latest values",
            "const li = [...document.querySelectorAll('#latest-list li')];\
             return li.length > 0 && li.map(l => [l.dataset.series, l.querySelector('.when').textContent])",
        )
        .await;
    assert_eq!(shown, json!([[GUT, latest["results"][0]["time"]]]));
    let count = "return document.querySelectorAll('#sessions-list li').length";
    browser
        .wait_for("20 sessions", &format!("{count} === 20"))
        .await;
    browser.click("#sessions-more").await;
    browser
        .wait_for("33 sessions", &format!("{count} === 33"))
        .await;

    // Dragging across the second quarter of the chart zooms into it; the table is the
    // API's answer for the range shown.
    let width = browser
        .execute(
            &format!(
                "return document.querySelector('.card[data-series=\"{GUT}\"] .u-over').clientWidth"
            ),
            json!([]),
        )
        .await
        .as_i64()
        .unwrap();
    let before = renders(&browser).await;
    browser
        .drag(
            &format!(".card[data-series=\"{GUT}\"] .u-over"),
            (-width / 4, 0),
            (0, 0),
        )
        .await;
    drawn_after(&browser, before).await;
    let view = browser
        .execute(
            "const r = document.querySelector('#results').dataset;\
             return [r.zoomed, r.viewStart, r.viewEnd]",
            json!([]),
        )
        .await;
    let (start, end) = (view[1].as_str().unwrap(), view[2].as_str().unwrap());
    assert_eq!(view[0], "true");
    assert!(
        start > "2025-03-05" && end < "2025-03-20" && start < end,
        "{view}"
    );
    let zoomed = chart(&browser, GUT, "points").await;
    assert!(zoomed > 20 && zoomed < 124, "{zoomed}");
    let (_, answer) = app.get_as(Some(&token), &points(start, end)).await;
    let rows = table(&browser, GUT).await;
    assert_table_is(&rows, &answer["results"]);

    // The CSV is what is shown: the same points, in the same order.
    browser.click("#csv").await;
    let csv = downloaded(&browser, "points.csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,series,session_id,value");
    let times: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let shown_times: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(times, shown_times);

    // Reset: the whole month again.
    click_and_draw(&browser, "#reset").await;
    assert_eq!(chart(&browser, GUT, "points").await, 124);

    // A session's link narrows the view to its points.
    let session = browser
        .execute(
            "return document.querySelectorAll('#sessions-list li')[5].dataset.session",
            json!([]),
        )
        .await;
    let session = session.as_str().unwrap().to_string();
    click_and_draw(
        &browser,
        &format!("#sessions-list li[data-session=\"{session}\"] a"),
    )
    .await;
    let (_, summary) = app
        .get_as(Some(&token), &format!("/api/sessions/{session}/"))
        .await;
    let in_session = summary["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["series"] == GUT)
        .unwrap();
    assert_eq!(
        chart(&browser, GUT, "points").await,
        in_session["count"].as_i64().unwrap()
    );
    for row in &table(&browser, GUT).await[1..] {
        assert_eq!(row.last().unwrap(), &session[..8]);
    }
    let chip = browser
        .execute(
            "return document.querySelector('#session-chip').hidden",
            json!([]),
        )
        .await;
    assert_eq!(chip, false);

    assert_no_stray_request_or_console_error(&browser, &app, &[]).await;
}

#[actix_web::test]
async fn buckets_fields_and_text_are_drawn_as_the_api_answers() {
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    let app = TestApp::spawn().await;
    let user = seeded_user(&app).await;
    browser
        .goto(&app.url(&format!("/ui/#token={}", app.admin_token)))
        .await;
    browser
        .wait_for(
            "the form",
            "return !document.querySelector('#query-fields').disabled",
        )
        .await;

    // Daily maxima of March: 31 buckets, the API's.
    // (The aggregate is greyed out until an interval of buckets is picked.)
    browser.select("#interval", "day").await;
    browser.select("#agg_func", "max").await;
    show(&browser, user, GUT, "day").await;
    assert_eq!(chart(&browser, GUT, "points").await, 31);
    let (_, answer) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&series={GUT}&interval=day&agg_func=max\
             &start_time={MARCH_START}&end_time={MARCH_END}"
        ))
        .await;
    assert_table_is(&table(&browser, GUT).await, &answer["results"]);
    // Its CSV is the answer's rows.
    browser.click("#csv").await;
    let csv = downloaded(&browser, "timeseries.csv").await;
    assert_eq!(csv.lines().count(), 32);
    assert_eq!(
        csv.lines().nth(1).unwrap(),
        format!(
            "2025-03-01T00:00:00Z,{GUT},{}",
            answer["results"][0]["value"]
        )
    );

    // {r, g, b}: a line per field; text: markers whose value shows on hover.
    show(&browser, user, "", "raw").await;
    assert_eq!(chart(&browser, COLOUR, "lines").await, 3);
    assert_eq!(chart(&browser, COLOUR, "points").await, 31);
    assert_eq!(chart(&browser, NOTE, "lines").await, 1);
    assert_eq!(chart(&browser, NOTE, "points").await, 5);
    let first_note = browser
        .execute(
            &format!(
                "const box = document.querySelector('.card[data-series=\"{NOTE}\"] .chart');\
                 box.scrollIntoView({{block: 'center'}});\
                 const u = box.uplot, r = u.over.getBoundingClientRect();\
                 return [Math.round(r.left + u.valToPos(u.data[0][1], 'x')),\
                         Math.round(r.top + u.valToPos(u.data[1][1], 'y'))]"
            ),
            json!([]),
        )
        .await;
    browser
        .hover_at(
            first_note[0].as_i64().unwrap(),
            first_note[1].as_i64().unwrap(),
        )
        .await;
    let legend = format!(
        "return document.querySelector('.card[data-series=\"{NOTE}\"] .u-legend .u-series:nth-child(2) .u-value').textContent"
    );
    browser
        .wait_for(
            "the note on hover",
            &format!("return {} === '{}'", &legend[7..], NOTES[1]),
        )
        .await;

    // Pictures to look at, a desktop's width and a phone's.
    browser.resize(1280, 1240).await;
    browser.execute("window.scrollTo(0, 0)", json!([])).await;
    let pictures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    browser.screenshot(&pictures.join("desktop.png")).await;
    browser.resize(390, 844).await;
    browser
        .wait_for(
            "a narrow chart",
            "return document.querySelector('.u-over').clientWidth < 390",
        )
        .await;
    browser
        .execute(
            "document.querySelector('#results').scrollIntoView()",
            json!([]),
        )
        .await;
    browser.screenshot(&pictures.join("phone.png")).await;

    assert_no_stray_request_or_console_error(&browser, &app, &[]).await;
}

#[actix_web::test]
async fn api_errors_are_shown_beside_their_fields() {
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    let app = TestApp::spawn_with(&[("MAX_EXPORTS_PER_TOKEN", "1")]).await;
    let user = seeded_user(&app).await;
    let token = app.user_token(user);

    // 401: a token that is not one, beside the token field.
    browser.goto(&app.url("/ui/#token=sdk_nope")).await;
    assert_error_beside(&browser, "token", "Invalid token.").await;
    browser.type_into("#token", &token).await;
    browser.click("#token-form button[type=submit]").await;
    browser
        .wait_for(
            "the form",
            "return !document.querySelector('#query-fields').disabled",
        )
        .await;

    // 403: a user token asking for another user, beside the user.
    let submit = "#query button[type=submit]";
    browser
        .type_into("#user_id", &Uuid::new_v4().to_string())
        .await;
    browser.click(submit).await;
    assert_error_beside(&browser, "user_id", FORBIDDEN).await;
    // 400s, each beside the field it names.
    browser.type_into("#user_id", "not-a-user").await;
    browser.click(submit).await;
    assert_error_beside(&browser, "user_id", "Must be a valid UUID.").await;
    browser.type_into("#user_id", &user.to_string()).await;
    browser.type_into("#start_time", "2025-03-31").await;
    browser.type_into("#end_time", "2025-03-01").await;
    browser.click(submit).await;
    assert_error_beside(
        &browser,
        "start_time",
        "start_time must not be after end_time.",
    )
    .await;
    browser.type_into("#start_time", MARCH_START).await;
    browser.type_into("#end_time", MARCH_END).await;
    browser.select("#interval", "day").await;
    browser.type_into("#tz", "Mars/Olympus_Mons").await;
    browser.click(submit).await;
    let (status, refusal) = app
        .get_as(
            Some(&token),
            &format!("/api/timeseries/?user_id={user}&interval=day&tz=Mars/Olympus_Mons"),
        )
        .await;
    assert_eq!(status, 400);
    assert_error_beside(&browser, "tz", refusal["tz"][0].as_str().unwrap()).await;
    // Nothing else is marked.
    let marked = browser
        .execute(
            "return [...document.querySelectorAll('[aria-invalid]')].map(e => e.name)",
            json!([]),
        )
        .await;
    assert_eq!(marked, json!(["tz"]));

    // 429: a CSV while the token's one export slot is taken (by an export that waits
    // on a lock), beside the CSV button, naming the setting.
    browser.type_into("#tz", "").await;
    browser.select("#interval", "raw").await;
    click_and_draw(&browser, submit).await;
    let mut holder = app.conn();
    holder
        .batch_execute("BEGIN; LOCK TABLE points IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let export = app.url(&format!(
        "/api/timeseries/points/?user_id={user}&format=csv"
    ));
    let held = actix_web::rt::spawn(client_with(Some(&token)).get(export.clone()).send());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Each try either finds the slot taken (429) or takes it and waits on the lock.
        let attempt = awc::Client::builder()
            .timeout(Duration::from_millis(300))
            .add_default_header(("authorization", format!("Bearer {token}")))
            .finish();
        if let Ok(response) = attempt.get(export.clone()).send().await
            && response.status() == 429
        {
            break;
        }
        assert!(Instant::now() < deadline, "the export slot was never taken");
    }
    browser.click("#csv").await;
    assert_error_beside(&browser, "csv", "(MAX_EXPORTS_PER_TOKEN)").await;
    holder.batch_execute("ROLLBACK").unwrap();
    let _ = held.await;

    assert_no_stray_request_or_console_error(&browser, &app, &[400, 401, 403, 429]).await;
}

#[actix_web::test]
async fn the_page_and_its_files_are_public_and_come_from_the_binary() {
    let app = TestApp::spawn().await;
    for path in ["/ui/", "/ui"] {
        let mut resp = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            resp.headers().get("content-security-policy").unwrap(),
            seriesd::headers::CONTENT_SECURITY_POLICY
        );
        let html = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
        // Scripts only from this server, none inline, no handler attributes, no other host.
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert_eq!(scripts.len(), 2, "{html}");
        for tag in scripts {
            let head = &tag[..tag.find('>').unwrap()];
            assert!(head.contains("src=\"/ui/"), "{head}");
            assert!(
                tag[tag.find('>').unwrap() + 1..].starts_with("</script>"),
                "{tag}"
            );
        }
        assert!(!has_handler_attribute(&html), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
    }
    // Every file, with its type and a validator; asked again with it, a 304.
    for (file, kind) in [
        ("main.js", "application/javascript"),
        ("api.js", "application/javascript"),
        ("form.js", "application/javascript"),
        ("charts.js", "application/javascript"),
        ("table.js", "application/javascript"),
        ("panels.js", "application/javascript"),
        ("explorer.css", "text/css"),
        ("uPlot.iife.min.js", "application/javascript"),
        ("uPlot.min.css", "text/css"),
        ("uPlot.LICENSE", "text/plain"),
    ] {
        let url = app.url(&format!("/ui/{file}"));
        let mut resp = client().get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{file}");
        let h = resp.headers().clone();
        assert!(
            h.get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
        assert_eq!(
            h.get("cache-control").unwrap(),
            "public, no-cache",
            "{file}"
        );
        let body = resp.body().limit(1 << 20).await.unwrap();
        let on_disk = match file {
            f if f.starts_with("uPlot") => format!("assets/{f}"),
            f => format!("assets/ui/{f}"),
        };
        let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join(on_disk);
        assert_eq!(body, std::fs::read(on_disk).unwrap(), "{file}");
        let etag = h.get("etag").unwrap().to_str().unwrap().to_string();
        let again = client()
            .get(&url)
            .insert_header(("if-none-match", etag.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{file}");
        assert_eq!(again.headers().get("etag").unwrap().to_str().unwrap(), etag);
    }
    // Other names are a 404, without a token too; the API stays closed.
    let (status, body) = app.get_as(None, "/ui/nothing.js").await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    assert_eq!(app.get_as(None, "/ui/a/b.js").await.0, 401);
    assert_eq!(app.get_as(None, "/api/metrictypes/").await.0, 401);
}

#[actix_web::test]
async fn the_demo_user_is_drawn_one_click_after_pasting_a_token() {
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    let app = TestApp::spawn().await;
    let pool = seriesd::db::build_pool(&settings_for(&app.db.url, &[]), 1);
    let now = chrono::Utc::now();
    let loaded = demo_data::load(&pool, now, 0).unwrap();
    // Today's session exists once its first point (06:30 UTC) is past.
    assert!(loaded.sessions as i64 >= DEMO_DAYS - 1, "{loaded:?}");
    assert_eq!(loaded.inserted, loaded.points);
    // Loaded again (as every `make run` does), nothing is stored twice.
    let again = demo_data::load(&pool, now, 0).unwrap();
    assert_eq!(
        (again.points, again.inserted, again.updated),
        (loaded.points, 0, 0)
    );

    // `make run`'s link, the token pasted, one click: the last month of every series.
    browser
        .goto(&app.url(&format!("/ui/#user_id={DEMO_USER}")))
        .await;
    browser.type_into("#token", &app.admin_token).await;
    click_and_draw(&browser, "#token-form button[type=submit]").await;
    for (series, a_day) in [
        (GUT, 3),
        (COLOUR, 4),
        (NOTE, 1),
        ("session.urine.night_count", 1),
    ] {
        let points = chart(&browser, series, "points").await;
        assert!(
            (29 * a_day..=31 * a_day).contains(&points),
            "{series}: {points}"
        );
    }
    assert_eq!(chart(&browser, COLOUR, "lines").await, 3);

    // The README's picture (`make explorer-screenshot`).
    if let Some(path) = std::env::var_os("EXPLORER_SCREENSHOT") {
        browser.resize(1280, 1100).await;
        browser.screenshot(Path::new(&path)).await;
    }
    assert_no_stray_request_or_console_error(&browser, &app, &[]).await;
}
