//! API tokens: making them (the secret is returned once and only its hash is stored),
//! resolving a presented secret to what it may do, listing and revoking.

use crate::db::api_tokens::{self, TokenRow};
use crate::domain::api_token::{Scope, TokenHash, TokenSecret};
use crate::error::ApiError;
use diesel::pg::PgConnection;

/// Longest token name.
pub const MAX_NAME_CHARS: usize = 200;

/// Creates a token; returns its row and its secret, which exists nowhere else.
pub fn create(
    conn: &mut PgConnection,
    scope: Scope,
    name: &str,
) -> Result<(TokenRow, TokenSecret), ApiError> {
    if name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(ApiError::field(
            "name",
            format!("At most {MAX_NAME_CHARS} characters, and no NUL."),
        ));
    }
    let secret = TokenSecret::generate()
        .map_err(|e| ApiError::internal(format!("no random bytes from the OS: {e}")))?;
    let row = api_tokens::insert(conn, name, scope.role(), scope.user_id(), &secret.hash().0)?;
    Ok((row, secret))
}

/// An active token: its id and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveToken {
    pub id: i64,
    pub scope: Scope,
}

/// The active (not revoked) token with this hash, if any; records the use.
pub fn resolve(conn: &mut PgConnection, hash: &TokenHash) -> Result<Option<ActiveToken>, ApiError> {
    let Some(row) = api_tokens::find_active(conn, &hash.0)? else {
        return Ok(None);
    };
    let Some(scope) = Scope::from_row(&row.role, row.user_id) else {
        // The table's CHECK constraints make this impossible.
        return Err(ApiError::internal(format!(
            "api_tokens row {} has role {:?} and user_id {:?}",
            row.id, row.role, row.user_id
        )));
    };
    let recently_used = row
        .last_used_at
        .is_some_and(|t| chrono::Utc::now() - t < chrono::TimeDelta::minutes(1));
    if !recently_used {
        api_tokens::touch(conn, row.id)?;
    }
    Ok(Some(ActiveToken { id: row.id, scope }))
}

/// Every token, oldest first, without secrets.
pub fn list(conn: &mut PgConnection) -> Result<Vec<TokenRow>, ApiError> {
    Ok(api_tokens::list(conn)?)
}

/// What [`revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
    NoSuchToken,
}

/// Revokes a token. Every replica stops accepting it within the token cache's
/// lifetime (at most a second).
pub fn revoke(conn: &mut PgConnection, id: i64) -> Result<Revoked, ApiError> {
    if api_tokens::revoke(conn, id)? {
        return Ok(Revoked::Now);
    }
    Ok(match api_tokens::get(conn, id)? {
        Some(_) => Revoked::Already,
        None => Revoked::NoSuchToken,
    })
}

/// Whether `secret` is an active token with admin scope.
pub fn is_active_admin(conn: &mut PgConnection, secret: &TokenSecret) -> Result<bool, ApiError> {
    Ok(api_tokens::find_active(conn, &secret.hash().0)?
        .is_some_and(|row| Scope::from_row(&row.role, row.user_id) == Some(Scope::Admin)))
}
