//! API tokens: the secret's format, how one is made, the hash that is stored in its
//! place, and what a token may do ([`Scope`]).
//!
//! A token is `sdk_` followed by 32 bytes from the operating system's random source in
//! unpadded base64url (43 characters): 256 random bits. The secret is shown once and
//! never stored; the database keeps its SHA-256. With that much entropy a fast hash is
//! enough: there is nothing to guess, so nothing to slow down or salt.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// Every token starts with this, so a leaked one is recognisable (secret scanners).
pub const PREFIX: &str = "sdk_";
/// Random bytes in a token.
const RANDOM_BYTES: usize = 32;
/// Length of the base64url text of [`RANDOM_BYTES`] without padding.
const ENCODED_LEN: usize = 43;
/// Length of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + ENCODED_LEN;

/// A token's secret text. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A new token from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// Accepts text of a token's shape (prefix, length, alphabet). Anything else can
    /// never be a token, so it is refused without a database lookup.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(PREFIX)?;
        let well_formed = s.len() == TOKEN_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            // The last character carries 4 bits of the 256 and 2 zero bits.
            && URL_SAFE_NO_PAD.decode(body).is_ok_and(|b| b.len() == RANDOM_BYTES);
        well_formed.then(|| Self(s.to_string()))
    }

    /// The secret, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks tokens up by.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(sdk_…)")
    }
}

/// The SHA-256 of a token's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything, including the metric-type catalogue.
    Admin,
    /// Only this user's data: ingest it and read it back.
    User(Uuid),
}

impl Scope {
    /// The `role` column's value.
    pub fn role(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User(_) => "user",
        }
    }

    /// The user a user token is bound to.
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Self::Admin => None,
            Self::User(u) => Some(u),
        }
    }

    /// Rebuilds a scope from the stored `role` and `user_id`.
    pub fn from_row(role: &str, user_id: Option<Uuid>) -> Option<Self> {
        match (role, user_id) {
            ("admin", None) => Some(Self::Admin),
            ("user", Some(u)) => Some(Self::User(u)),
            _ => None,
        }
    }

    /// Whether this scope may read and write `user`'s data.
    pub fn may_access(self, user: Uuid) -> bool {
        match self {
            Self::Admin => true,
            Self::User(u) => u == user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_well_formed_and_parse_back() {
        let a = TokenSecret::generate().unwrap();
        let b = TokenSecret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(a.expose().starts_with("sdk_"));
        assert_eq!(TokenSecret::parse(a.expose()), Some(a.clone()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), TokenSecret::parse(a.expose()).unwrap().hash());
    }

    #[test]
    fn malformed_text_is_no_token() {
        let good = TokenSecret::generate().unwrap();
        let text = good.expose();
        for bad in [
            "",
            "sdk_",
            &text[..TOKEN_LEN - 1],
            &format!("{text}A"),
            &text.replacen("sdk_", "sdx_", 1),
            &format!("sdk_{}", "+".repeat(43)),
            &format!("sdk_{}", "é".repeat(21)),
        ] {
            assert_eq!(TokenSecret::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = TokenSecret::generate().unwrap();
        assert!(!format!("{t:?}").contains(&t.expose()[4..]));
    }

    #[test]
    fn scopes() {
        let u = Uuid::new_v4();
        assert!(Scope::Admin.may_access(u));
        assert!(Scope::User(u).may_access(u));
        assert!(!Scope::User(u).may_access(Uuid::new_v4()));
        assert_eq!(Scope::from_row("user", Some(u)), Some(Scope::User(u)));
        assert_eq!(Scope::from_row("admin", None), Some(Scope::Admin));
        assert_eq!(Scope::from_row("admin", Some(u)), None);
        assert_eq!(Scope::from_row("user", None), None);
    }
}
