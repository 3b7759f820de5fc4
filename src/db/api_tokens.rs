//! `api_tokens`: hashed API tokens, their scope and their life cycle.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, QueryableByName)]
pub struct TokenRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub user_id: Option<Uuid>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, role, user_id, created_at, revoked_at, last_used_at";

/// Stores a token's hash; returns the new row.
pub fn insert(
    conn: &mut PgConnection,
    name: &str,
    role: &str,
    user_id: Option<Uuid>,
    hash: &[u8; 32],
) -> QueryResult<TokenRow> {
    diesel::sql_query(format!(
        "INSERT INTO api_tokens (name, role, user_id, token_hash) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    ))
    .bind::<Text, _>(name)
    .bind::<Text, _>(role)
    .bind::<Nullable<SqlUuid>, _>(user_id)
    .bind::<Bytea, _>(hash.as_slice())
    .get_result(conn)
}

/// The token with this hash, if it exists and is not revoked.
pub fn find_active(conn: &mut PgConnection, hash: &[u8; 32]) -> QueryResult<Option<TokenRow>> {
    diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
    ))
    .bind::<Bytea, _>(hash.as_slice())
    .get_result(conn)
    .optional()
}

/// Records a use, at most once a minute per token (so that reads stay reads).
pub fn touch(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind::<BigInt, _>(id)
    .execute(conn)
    .map(|_| ())
}

/// Every token, oldest first.
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<TokenRow>> {
    diesel::sql_query(format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id")).load(conn)
}

/// The token with this id, revoked or not.
pub fn get(conn: &mut PgConnection, id: i64) -> QueryResult<Option<TokenRow>> {
    diesel::sql_query(format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .optional()
}

/// Marks the token revoked (keeping the first revocation time); returns whether it
/// was active until now.
pub fn revoke(conn: &mut PgConnection, id: i64) -> QueryResult<bool> {
    diesel::sql_query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind::<BigInt, _>(id)
    .execute(conn)
    .map(|n| n == 1)
}
