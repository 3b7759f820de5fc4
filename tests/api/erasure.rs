//! Deleting data over HTTP: erasing a user (`DELETE /api/users/{id}/`), after which every
//! read of the user answers as for a user who never existed while other users keep
//! everything, and deleting a range of points (`DELETE /api/timeseries/`).

use crate::helpers::{
    FORBIDDEN, TestApp, after_first_rollup_run, assert_same_answers, client_with, count, one_day,
    send, session_body, x_cache,
};
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::query::AggFunc;
use seriesd::services::catalogue::Catalogue;
use uuid::Uuid;

/// The rows of `user` in every table with rows of users (but `api_tokens` and
/// `user_generations`): points, sessions and their owners, then the rollup tables.
fn rows_of(app: &TestApp, user: Uuid) -> Vec<(&'static str, i64)> {
    let mut conn = app.conn();
    ["points", "sessions", "session_owners"]
        .into_iter()
        .chain(rollups::user_rollup_tables())
        .map(|t| {
            let n = count(
                &mut conn,
                &format!("SELECT count(*) AS n FROM {t} WHERE user_id = '{user}'"),
            );
            (t, n)
        })
        .collect()
}

fn generation(app: &TestApp, user: Uuid) -> i64 {
    count(
        &mut app.conn(),
        &format!("SELECT generation AS n FROM user_generations WHERE user_id = '{user}'"),
    )
}

/// A server whose rollup job waits an hour between runs (the test refreshes by hand),
/// whose new sessions append hourly rows for any hour, that caches in Redis under
/// `prefix`, and whose deletions go a few points and sessions at a time, so that every
/// step of them is taken several times.
async fn app_with_small_steps(prefix: &str) -> TestApp {
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("ROLLUP_APPEND_HOURS", "1000000"),
        ("REDIS_PREFIX", prefix),
        ("DELETE_BATCH_POINTS", "4"),
        ("ERASE_BATCH_SESSIONS", "2"),
        ("AUTH_CACHE_TTL_MS", "0"),
    ])
    .await;
    after_first_rollup_run(&app).await;
    app
}

/// Session `k` (below 28) of a user's history: at 10:k on the (k+1)-th of January,
/// February and March 2025, a score, a colour and a note.
fn history_session(user: Uuid, session: Uuid, k: u32) -> Value {
    let mut data = Vec::new();
    for month in 1..=3 {
        let t = format!("2025-{month:02}-{:02}T10:{:02}:00Z", k % 28 + 1, k % 60);
        let v = f64::from(k * 10 + month);
        data.push(json!({"series": "session.gut_health_score", "time": t, "value": {"value": v}}));
        data.push(
            json!({"series": "session.urine.color", "time": t, "value": {"r": v, "g": 1, "b": 2}}),
        );
        data.push(json!({"series": "session.example.series", "time": t, "value": {"value": format!("note {v}")}}));
    }
    session_body(user, session, data)
}

/// Posts `sessions` sessions of history for `user`; returns their ids.
async fn post_history(app: &TestApp, user: Uuid, sessions: u32) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for k in 0..sessions {
        let id = Uuid::new_v4();
        let (status, body) = app
            .post("/api/sessions/", &history_session(user, id, k))
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(id);
    }
    ids
}

/// Every read of `user`'s data the API offers: aggregates on the rollup path (whole
/// months) and on the raw path (a median), the latest values now and as of a time, raw
/// points as pages and as both exports, the session list.
fn reads(user: Uuid) -> Vec<String> {
    let range = "start_time=2025-01-01&end_time=2025-03-31T23:59:59Z";
    vec![
        format!("/api/timeseries/?user_id={user}&{range}&interval=month"),
        format!("/api/timeseries/?user_id={user}&{range}&interval=day&agg_func=median"),
        format!("/api/timeseries/latest/?user_id={user}"),
        format!("/api/timeseries/latest/?user_id={user}&as_of=2025-02-15"),
        format!("/api/timeseries/points/?user_id={user}&{range}"),
        format!("/api/timeseries/points/?user_id={user}&{range}&format=csv"),
        format!("/api/timeseries/points/?user_id={user}&{range}&format=ndjson"),
        format!("/api/sessions/?user_id={user}"),
    ]
}

/// The answers to [`reads`] of `user`, with the user's id written as `USER` (so that two
/// users' answers compare) and the time `latest` answers "as of now" left out.
async fn answers(app: &TestApp, user: Uuid) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for path in reads(user) {
        let (status, mut body) = app.get(&path).await;
        if let Some(o) = body.as_object_mut()
            && path.contains("/latest/")
            && !path.contains("as_of")
        {
            o.remove("as_of");
        }
        out.push((status, body.to_string().replace(&user.to_string(), "USER")));
    }
    out
}

/// `GET path` and its `X-Cache` header.
async fn cache_state(app: &TestApp, path: &str) -> String {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    x_cache(&resp)
}

/// Keys in Redis that start with `prefix`.
async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[actix_web::test]
async fn an_erased_user_reads_as_one_who_never_existed_and_others_keep_everything() {
    let prefix = format!("seriesd-test-{}", Uuid::new_v4().simple());
    let app = app_with_small_steps(&prefix).await;
    let (user, other, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mine = post_history(&app, user, 5).await;
    post_history(&app, other, 3).await;
    rollups::refresh(&mut app.conn(), 1_000_000).unwrap();
    // Something in each rollup table and in the log: a changed point (an invalidation
    // awaiting the job) and an hour set aside after a failure.
    let mut changed = history_session(user, mine[0], 0);
    changed["data"][0]["value"]["value"] = json!(99);
    assert_eq!(app.post("/api/sessions/", &changed).await.0, 201);
    let score = crate::helpers::series_id(&mut app.conn(), "session.gut_health_score");
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO rollup_failures (user_id, series_id, hour, attempts, retry_at, error)
             VALUES ('{user}', {score}, '2025-01-01T10:00:00Z', 1, now() + interval '1 hour', 'test')"
        )),
        &mut app.conn(),
    )
    .unwrap();
    for (table, n) in rows_of(&app, user) {
        assert!(n > 0, "{table} holds nothing of the user before the erase");
    }
    let monthly = &reads(user)[0];
    let others_monthly = &reads(other)[0];
    for path in [monthly, others_monthly] {
        assert_eq!(cache_state(&app, path).await, "MISS");
        assert_eq!(cache_state(&app, path).await, "HIT");
    }
    let others_rows = rows_of(&app, other);
    let others_answers = answers(&app, other).await;
    let before = answers(&app, user).await;
    assert!(
        before.iter().all(|(status, _)| *status == 200),
        "{before:?}"
    );
    assert_ne!(before, answers(&app, stranger).await);
    let users_keys = format!("{prefix}:ts:v2:{user}:");
    let others_keys = format!("{prefix}:ts:v2:{other}:");
    assert!(!redis_keys(&users_keys).await.is_empty());
    let generation_before = generation(&app, user);

    let (status, body) = app.delete(&format!("/api/users/{user}/")).await;
    // 5 sessions of 9 points.
    assert_eq!((status, body), (200, json!({"sessions": 5, "points": 45})));

    for (table, n) in rows_of(&app, user) {
        assert_eq!(n, 0, "{table} still holds rows of the erased user");
    }
    // The generation only ever grows, and the time span is forgotten.
    assert!(generation(&app, user) > generation_before);
    assert_eq!(
        count(
            &mut app.conn(),
            &format!(
                "SELECT count(*) AS n FROM user_generations
                 WHERE user_id = '{user}' AND first_time IS NULL AND last_time IS NULL"
            )
        ),
        1
    );
    // Cached answers are gone from Redis, and not served.
    assert_eq!(redis_keys(&users_keys).await, Vec::<String>::new());
    assert_eq!(cache_state(&app, monthly).await, "MISS");
    assert_eq!(answers(&app, user).await, answers(&app, stranger).await);
    for session in &mine {
        assert_eq!(app.get(&format!("/api/sessions/{session}/")).await.0, 404);
    }
    // The rollup job finds nothing of the user to bring back.
    rollups::refresh(&mut app.conn(), 1_000_000).unwrap();
    assert!(rows_of(&app, user).iter().all(|(_, n)| *n == 0));
    assert_eq!(answers(&app, user).await, answers(&app, stranger).await);

    // The other user is untouched, and still answered from the cache.
    assert_eq!(rows_of(&app, other), others_rows);
    assert_eq!(cache_state(&app, others_monthly).await, "HIT");
    assert!(!redis_keys(&others_keys).await.is_empty());
    assert_eq!(answers(&app, other).await, others_answers);

    // Again: nothing left.
    let (status, body) = app.delete(&format!("/api/users/{user}/")).await;
    assert_eq!((status, body), (200, json!({"sessions": 0, "points": 0})));
    // The user may start again, from nothing.
    let again = post_history(&app, user, 1).await;
    let (_, page) = app.get(&format!("/api/sessions/?user_id={user}")).await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["session_id"], json!(again[0]));
}

#[actix_web::test]
async fn a_user_may_erase_itself_and_only_an_admin_its_tokens() {
    let prefix = format!("seriesd-test-{}", Uuid::new_v4().simple());
    let app = app_with_small_steps(&prefix).await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    post_history(&app, user, 2).await;
    post_history(&app, other, 1).await;
    let (own, others) = (app.user_token(user), app.user_token(other));
    let path = format!("/api/users/{user}/");

    // Another user's token: refused, nothing erased.
    let (status, body) = app.delete_as(Some(&others), &path).await;
    assert_eq!((status, &body["detail"]), (403, &json!(FORBIDDEN)));
    // The user's own token may not delete tokens.
    let (status, _) = app
        .delete_as(Some(&own), &format!("{path}?tokens=true"))
        .await;
    assert_eq!(status, 403);
    assert_eq!(rows_of(&app, user)[0], ("points", 18));
    // Bad input.
    let (status, body) = app.delete(&format!("{path}?tokens=maybe")).await;
    assert_eq!(status, 400);
    assert!(body["tokens"].is_array(), "{body}");
    assert_eq!(app.delete("/api/users/not-a-uuid/").await.0, 404);

    // The user's own token erases its data, and still works afterwards.
    let (status, body) = app.delete_as(Some(&own), &path).await;
    assert_eq!((status, body), (200, json!({"sessions": 2, "points": 18})));
    let (status, page) = app
        .get_as(Some(&own), &format!("/api/sessions/?user_id={user}"))
        .await;
    assert_eq!((status, &page["count"]), (200, &json!(0)));

    // An admin deletes the user's tokens too; they are refused at once
    // (AUTH_CACHE_TTL_MS=0 here).
    let (status, body) = app.delete(&format!("{path}?tokens=true")).await;
    assert_eq!(
        (status, body),
        (200, json!({"sessions": 0, "points": 0, "tokens": 1}))
    );
    let (status, _) = app
        .get_as(Some(&own), &format!("/api/sessions/?user_id={user}"))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        app.get_as(Some(&others), &format!("/api/sessions/?user_id={other}"))
            .await
            .0,
        200
    );
    assert_eq!(rows_of(&app, other)[0], ("points", 9));
}

#[actix_web::test]
async fn writes_during_an_erase_are_kept_or_erased_whole_and_never_refused() {
    let prefix = format!("seriesd-test-{}", Uuid::new_v4().simple());
    let app = app_with_small_steps(&prefix).await;
    let user = Uuid::new_v4();
    let existing = post_history(&app, user, 24).await;
    let erase = {
        let client = client_with(Some(&app.admin_token));
        let url = app.url(&format!("/api/users/{user}/"));
        actix_web::rt::spawn(async move { send(client.delete(url), None).await })
    };
    // Until it is over: new sessions, and more points for existing ones.
    let mut written: Vec<Uuid> = Vec::new();
    for k in 0..200u32 {
        if erase.is_finished() {
            break;
        }
        let id = if k % 2 == 0 {
            Uuid::new_v4()
        } else {
            existing[(k as usize / 2) % existing.len()]
        };
        let body = session_body(
            user,
            id,
            json!([
                {"series": "session.gut_health_score", "time": "2025-04-01T08:00:00Z", "value": {"value": k}},
                {"series": "session.gut_health_score", "time": "2025-04-01T09:00:00Z", "value": {"value": k + 1}}
            ]),
        );
        let (status, resp) = app.post("/api/sessions/", &body).await;
        assert_eq!(status, 201, "{resp}");
        written.push(id);
    }
    let (status, erased) = erase.await.unwrap();
    assert_eq!(status, 200, "{erased}");

    // Whatever is left is whole: a kept session holds exactly what the write during the
    // erase posted (its earlier points were erased), and no point outlives its session.
    let mut conn = app.conn();
    let mut kept = 0;
    written.sort();
    written.dedup();
    for id in &written {
        let (status, detail) = app.get(&format!("/api/sessions/{id}/")).await;
        match status {
            200 => {
                assert_eq!(detail["points"], json!(2), "{detail}");
                kept += 1;
            }
            404 => {}
            _ => panic!("{status}: {detail}"),
        }
    }
    for id in existing.iter().filter(|id| !written.contains(id)) {
        assert_eq!(app.get(&format!("/api/sessions/{id}/")).await.0, 404);
    }
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM points p WHERE p.user_id = '{user}'
                 AND NOT EXISTS (SELECT 1 FROM sessions s
                                 WHERE s.user_id = p.user_id AND s.session_id = p.session_id)"
            )
        ),
        0
    );
    assert_eq!(rows_of(&app, user)[0], ("points", 2 * kept));
    // The rollups of what was kept agree with its points, once refreshed and before.
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    for refreshed in [false, true] {
        if refreshed {
            rollups::refresh(&mut conn, 1_000_000).unwrap();
        }
        for agg in [AggFunc::Count, AggFunc::Sum] {
            let q = one_day(user, "session.*", "hour", "2025-04-01", agg);
            assert_same_answers(&mut conn, &snapshot, &q);
        }
    }
    // Erasing again takes exactly what was kept.
    let (status, body) = app.delete(&format!("/api/users/{user}/")).await;
    assert_eq!(
        (status, body),
        (200, json!({"sessions": kept, "points": 2 * kept}))
    );
}

#[actix_web::test]
async fn deleting_a_range_deletes_those_points_and_refreshes_their_hours() {
    let prefix = format!("seriesd-test-{}", Uuid::new_v4().simple());
    let app = app_with_small_steps(&prefix).await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    post_history(&app, user, 5).await;
    post_history(&app, other, 2).await;
    let mut conn = app.conn();
    rollups::refresh(&mut conn, 1_000_000).unwrap();
    let others_rows = rows_of(&app, other);
    let monthly = &reads(user)[0];
    assert_eq!(cache_state(&app, monthly).await, "MISS");
    assert_eq!(cache_state(&app, monthly).await, "HIT");

    // February's scores and colours (not the notes): 5 sessions of one point each.
    let path = format!(
        "/api/timeseries/?user_id={user}&series=session.gut_health_score,*.color\
         &start_time=2025-02-01&end_time=2025-02-28T23:59:59Z"
    );
    let (status, body) = app.delete(&path).await;
    assert_eq!((status, body), (200, json!({"deleted": 10})));

    let remaining = |series: &str, month: &str| {
        count(
            &mut app.conn(),
            &format!(
                "SELECT count(*) AS n FROM points p JOIN metric_types m ON m.id = p.series_id
                 WHERE p.user_id = '{user}' AND m.series = '{series}'
                   AND date_trunc('month', p.time, 'UTC') = '2025-{month}-01T00:00:00Z'"
            ),
        )
    };
    for series in ["session.gut_health_score", "session.urine.color"] {
        assert_eq!(remaining(series, "02"), 0, "{series}");
        assert_eq!(remaining(series, "01"), 5, "{series}");
        assert_eq!(remaining(series, "03"), 5, "{series}");
    }
    assert_eq!(remaining("session.example.series", "02"), 5);
    // Sessions stay; the hours await the job; the cache is not served.
    let (_, page) = app.get(&format!("/api/sessions/?user_id={user}")).await;
    assert_eq!(page["count"], 5);
    assert!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM rollup_invalidations WHERE user_id = '{user}'")
        ) >= 10
    );
    assert_eq!(cache_state(&app, monthly).await, "MISS");
    let (_, answer) = app.get(monthly).await;
    let february: Vec<&Value> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["bucket"] == "2025-02-01T00:00:00Z")
        .collect();
    assert_eq!(february.len(), 1, "{answer}");
    assert_eq!(february[0]["series"], "session.example.series");
    // The rollups agree with the points before the job ran and after.
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    for refreshed in [false, true] {
        if refreshed {
            rollups::refresh(&mut conn, 1_000_000).unwrap();
        }
        for day in ["2025-02-01", "2025-02-03", "2025-03-01"] {
            for agg in [AggFunc::Count, AggFunc::Sum, AggFunc::Last] {
                let q = one_day(user, "session.*", "hour", day, agg);
                assert_same_answers(&mut conn, &snapshot, &q);
            }
        }
    }
    assert_eq!(rows_of(&app, other), others_rows);
    // Again: nothing left in the range.
    assert_eq!(app.delete(&path).await, (200, json!({"deleted": 0})));
}

#[actix_web::test]
async fn deleting_a_range_validates_as_the_query_does_and_checks_the_token() {
    let prefix = format!("seriesd-test-{}", Uuid::new_v4().simple());
    let app = app_with_small_steps(&prefix).await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    post_history(&app, user, 1).await;
    let range = "start_time=2025-01-01&end_time=2025-12-31";
    for (query, field) in [
        (format!("user_id={user}&end_time=2025-12-31"), "start_time"),
        (format!("user_id={user}&start_time=2025-01-01"), "end_time"),
        (
            format!("user_id={user}&start_time=2025-12-31&end_time=2025-01-01"),
            "start_time",
        ),
        (
            format!("user_id={user}&start_time=yesterday&end_time=2025-01-01"),
            "start_time",
        ),
        (format!("user_id={user}&series=%5Ba&{range}"), "series"),
        (format!("user_id=nope&{range}"), "user_id"),
        (range.to_string(), "user_id"),
    ] {
        let (status, body) = app.delete(&format!("/api/timeseries/?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body[field].is_array(), "{query}: {body}");
    }
    let path = format!("/api/timeseries/?user_id={user}&{range}");
    let (status, body) = app.delete_as(Some(&app.user_token(other)), &path).await;
    assert_eq!((status, &body["detail"]), (403, &json!(FORBIDDEN)));
    assert_eq!(rows_of(&app, user)[0], ("points", 9));
    let (status, body) = app.delete_as(Some(&app.user_token(user)), &path).await;
    assert_eq!((status, body), (200, json!({"deleted": 9})));
}
