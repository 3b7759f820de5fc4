//! The `seriesd` binary: `migrate` and configuration errors.

use crate::helpers::{TestDb, count, drop_database};
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use seriesd::db::maintenance::MIGRATIONS;
use std::process::Command;

fn seriesd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seriesd"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run seriesd")
}

#[derive(QueryableByName, PartialEq, Debug)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
}

fn schema_of(conn: &mut PgConnection) -> Vec<Column> {
    diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text
         FROM information_schema.columns WHERE table_schema = 'public'
         ORDER BY table_name, ordinal_position",
    )
    .load(conn)
    .unwrap()
}

#[test]
fn migrate_creates_the_database_and_is_idempotent() {
    let url = TestDb::unique_url();
    let name = url.database_name().to_string();
    let out = seriesd(&["migrate"], &[("DATABASE_URL", url.as_str())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("migrations applied: ") && !stdout.contains("applied: 0"),
        "{stdout}"
    );
    let mut conn = PgConnection::establish(url.as_str()).unwrap();
    let first = schema_of(&mut conn);
    for table in ["metric_types", "sessions", "points", "catalogue_version"] {
        assert!(
            first.iter().any(|c| c.table_name == table),
            "missing {table}"
        );
    }
    let out = seriesd(&["migrate"], &[("DATABASE_URL", url.as_str())]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied: 0"));
    assert_eq!(schema_of(&mut conn), first);
    // `seed` is idempotent too.
    for expected in ["metric types inserted: 4", "metric types inserted: 0"] {
        let out = seriesd(&["seed"], &[("DATABASE_URL", url.as_str())]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM metric_types"),
        4
    );
    drop(conn);
    drop_database(&name);
}

#[test]
fn every_migration_runs_down_and_up_again() {
    let db = TestDb::create();
    let mut conn = db.conn();
    conn.revert_all_migrations(MIGRATIONS).unwrap();
    assert!(
        schema_of(&mut conn)
            .iter()
            .all(|c| c.table_name == "__diesel_schema_migrations")
    );
    conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert!(
        schema_of(&mut conn)
            .iter()
            .any(|c| c.table_name == "points")
    );
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    for (var, value) in [
        ("LISTEN_ADDR", "not-an-address"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("DB_POOL_SIZE", "0"),
        ("REDIS_URL", "http://localhost"),
    ] {
        let out = seriesd(&["serve"], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn tokens_are_made_listed_and_revoked_from_the_command_line() {
    let db = TestDb::create();
    let env = [("DATABASE_URL", db.url.as_str())];
    // The secret alone on standard output; what it is on standard error.
    let out = seriesd(&["token", "create", "--admin", "--name", "ops"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap();
    let secret = secret.trim();
    assert!(
        seriesd::domain::api_token::TokenSecret::parse(secret).is_some(),
        "{secret}"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("token 1 created (admin, \"ops\")"), "{said}");
    assert!(!said.contains(secret));
    let user = uuid::Uuid::new_v4().to_string();
    let out = seriesd(&["token", "create", "--user", &user], &env);
    assert!(out.status.success());
    // Neither --admin nor --user, or both: a usage error.
    assert_eq!(seriesd(&["token", "create"], &env).status.code(), Some(2));
    assert_eq!(
        seriesd(&["token", "create", "--admin", "--user", &user], &env)
            .status
            .code(),
        Some(2)
    );
    // Only the hash is stored; the list shows no secret.
    let mut conn = db.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM api_tokens WHERE token_hash = sha256('{secret}'::bytea)"
            )
        ),
        1
    );
    let list = String::from_utf8(seriesd(&["token", "list"], &env).stdout).unwrap();
    assert!(list.contains("admin") && list.contains(&user), "{list}");
    assert!(!list.contains(&secret[4..]));
    let out = seriesd(&["token", "revoke", "1"], &env);
    assert!(out.status.success());
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NOT NULL"
        ),
        1
    );
    assert!(!seriesd(&["token", "revoke", "99"], &env).status.success());
}

#[test]
fn ensure_dev_makes_a_private_admin_token_once_and_replaces_a_revoked_one() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::create();
    let env = [("DATABASE_URL", db.url.as_str())];
    let file = std::env::temp_dir().join(format!("seriesd-dev-{}", uuid::Uuid::new_v4().simple()));
    let file_arg = file.to_str().unwrap();
    let run = || seriesd(&["token", "ensure-dev", "--file", file_arg], &env);
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Authorization: Bearer $TOKEN"), "{said}");
    // How to use it is printed; the secret is not.
    assert!(!said.contains(first.trim()) && out.stdout.is_empty());
    // Kept while it is valid...
    assert!(run().status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    let mut conn = db.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM api_tokens"), 1);
    // ...replaced once revoked.
    assert!(seriesd(&["token", "revoke", "1"], &env).status.success());
    assert!(run().status.success());
    assert_ne!(std::fs::read_to_string(&file).unwrap(), first);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NULL AND role = 'admin'"
        ),
        1
    );
    let _ = std::fs::remove_file(&file);
}
