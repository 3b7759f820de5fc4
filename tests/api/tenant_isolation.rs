//! Tenant isolation: a user token reads and writes its own user's data only; another
//! user's is refused (403) or answered as missing (404), line by line in bulk posts, and
//! never from the cache.

use crate::helpers::{FORBIDDEN, TestApp, client_with, count, scored_session, send};
use serde_json::{Value, json};
use uuid::Uuid;

#[actix_web::test]
async fn a_user_token_reaches_its_own_user_and_no_other() {
    let app = TestApp::spawn().await;
    let (a, b, nobody) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (sa, sb) = (Uuid::new_v4(), Uuid::new_v4());
    let (ta, tb) = (app.user_token(a), app.user_token(b));
    // Each user posts their own session with their own token.
    assert_eq!(
        app.post_as(Some(&ta), "/api/sessions/", &scored_session(a, sa, 1.0))
            .await
            .0,
        201
    );
    assert_eq!(
        app.post_as(Some(&tb), "/api/sessions/", &scored_session(b, sb, 2.0))
            .await
            .0,
        201
    );
    // B may not post for A (nor for a user that does not exist): 403, nothing written.
    for user in [a, nobody] {
        let (status, body) = app
            .post_as(
                Some(&tb),
                "/api/sessions/",
                &scored_session(user, Uuid::new_v4(), 9.0),
            )
            .await;
        assert_eq!((status, body), (403, json!({"detail": FORBIDDEN})));
    }
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 2);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 4);

    let range = "start_time=2024-12-01&end_time=2025-02-01";
    let reads = |user: Uuid| {
        vec![
            format!("/api/timeseries/?user_id={user}&{range}"),
            format!("/api/timeseries/latest/?user_id={user}"),
            format!("/api/timeseries/points/?user_id={user}"),
            format!("/api/timeseries/points/?user_id={user}&format=csv"),
            format!("/api/timeseries/points/?user_id={user}&format=ndjson"),
            format!("/api/sessions/?user_id={user}"),
        ]
    };
    for path in reads(a) {
        // A reads A.
        assert_eq!(app.get_as(Some(&ta), &path).await.0, 200, "{path}");
        // B reading A, or a user that does not exist: the same 403.
        for other in [
            path.clone(),
            path.replace(&a.to_string(), &nobody.to_string()),
        ] {
            let (status, body) = app.get_as(Some(&tb), &other).await;
            assert_eq!(
                (status, body),
                (403, json!({"detail": FORBIDDEN})),
                "{other}"
            );
        }
    }
    // The admin reads anyone.
    for path in reads(b) {
        assert_eq!(app.get(&path).await.0, 200, "{path}");
    }
    // What A reads is A's only.
    let (_, page) = app
        .get_as(Some(&ta), &format!("/api/sessions/?user_id={a}"))
        .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["session_id"], sa.to_string());

    // Another user's session is answered exactly like one that does not exist.
    let missing = Uuid::new_v4();
    for (sid, expected) in [(sa, 200), (missing, 404)] {
        let (status, _) = app
            .get_as(Some(&ta), &format!("/api/sessions/{sid}/"))
            .await;
        assert_eq!(status, expected);
    }
    let (status, body) = app.get_as(Some(&tb), &format!("/api/sessions/{sa}/")).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": format!("No session {sa}.")}))
    );
    let (_, body_missing) = app
        .get_as(Some(&tb), &format!("/api/sessions/{missing}/"))
        .await;
    assert_eq!(
        body_missing,
        json!({"detail": format!("No session {missing}.")})
    );
    let (status, _) = app
        .delete_as(Some(&tb), &format!("/api/sessions/{sa}/"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 2);
    // A deletes A's own.
    let (status, _) = app
        .delete_as(Some(&ta), &format!("/api/sessions/{sa}/"))
        .await;
    assert_eq!(status, 204);
}

#[actix_web::test]
async fn bulk_lines_for_another_user_are_refused_one_by_one() {
    let app = TestApp::spawn().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tb = app.user_token(b);
    let lines = [
        scored_session(b, Uuid::new_v4(), 1.0),
        scored_session(a, Uuid::new_v4(), 2.0),
        scored_session(b, Uuid::new_v4(), 3.0),
    ]
    .iter()
    .map(|l| l.to_string() + "\n")
    .collect::<String>();
    let (status, report) = send(
        client_with(Some(&tb)).post(app.url("/api/sessions/bulk/")),
        Some(lines.into_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2);
    assert_eq!(
        report["rejected"],
        json!([{"line": 2, "errors": {"detail": FORBIDDEN}}])
    );
    let mut conn = app.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE user_id = '{a}'")
        ),
        0
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE user_id = '{b}'")
        ),
        4
    );
}

#[actix_web::test]
async fn a_cached_answer_for_one_user_is_never_served_to_another_users_token() {
    let app = TestApp::spawn().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (ta, tb) = (app.user_token(a), app.user_token(b));
    assert_eq!(
        app.post("/api/sessions/", &scored_session(a, Uuid::new_v4(), 5.0))
            .await
            .0,
        201
    );
    let path = format!("/api/timeseries/?user_id={a}&start_time=2024-12-01&end_time=2025-02-01");
    let x_cache = |token: String| {
        let url = app.url(&path);
        async move {
            let mut resp = client_with(Some(&token)).get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let cache = resp
                .headers()
                .get("X-Cache")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = resp.json().await.unwrap();
            (status, cache, body)
        }
    };
    let (status, cache, first) = x_cache(ta.clone()).await;
    assert_eq!((status, cache.as_deref()), (200, Some("MISS")));
    let (status, cache, _) = x_cache(app.admin_token.clone()).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));
    // The same URL, with B's token: refused before the cache is looked at.
    let (status, cache, body) = x_cache(tb).await;
    assert_eq!(
        (status, cache, body),
        (403, None, json!({"detail": FORBIDDEN}))
    );
    let (status, cache, again) = x_cache(ta).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));
    assert_eq!(again, first);
}
