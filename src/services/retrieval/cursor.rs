//! The position of a point in `(time, series_id, session_id)` order, and the opaque
//! cursor of a JSON page that carries it.

use crate::domain::timestamp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// The position of a point in `(time, series_id, session_id)` order: what a cursor
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PointKey {
    pub time: DateTime<Utc>,
    pub series_id: i32,
    pub session_id: Uuid,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 8 + 4 + 16;

impl PointKey {
    /// The opaque cursor: base64url (no padding) of a version byte, the time in
    /// microseconds, the series id and the session id.
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(CURSOR_BYTES);
        b.push(CURSOR_VERSION);
        b.extend_from_slice(&self.time.timestamp_micros().to_be_bytes());
        b.extend_from_slice(&self.series_id.to_be_bytes());
        b.extend_from_slice(self.session_id.as_bytes());
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(s: &str) -> Result<Self, String> {
        let invalid = || "Invalid cursor.".to_string();
        let b = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| invalid())?;
        if b.len() != CURSOR_BYTES || b[0] != CURSOR_VERSION {
            return Err(invalid());
        }
        let micros = i64::from_be_bytes(b[1..9].try_into().map_err(|_| invalid())?);
        let series_id = i32::from_be_bytes(b[9..13].try_into().map_err(|_| invalid())?);
        let session_id = Uuid::from_slice(&b[13..29]).map_err(|_| invalid())?;
        let time = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(invalid)?;
        // Every stored point lies within the accepted years; a cursor outside them was
        // not made by us (and PostgreSQL could not even compare such a time).
        if !(timestamp::MIN_YEAR..=timestamp::MAX_YEAR).contains(&time.year()) {
            return Err(invalid());
        }
        Ok(Self {
            time,
            series_id,
            session_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let k = PointKey {
            time: DateTime::<Utc>::from_timestamp_micros(-1_234_567).unwrap(),
            series_id: 42,
            session_id: Uuid::new_v4(),
        };
        let s = k.encode();
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        assert_eq!(PointKey::decode(&s).unwrap(), k);
        for bad in ["", "abc", "!!!!", &s[..s.len() - 2]] {
            assert!(PointKey::decode(bad).is_err(), "{bad}");
        }
        // Well-formed, but at a time no point can have (PostgreSQL cannot even hold
        // the first one): invalid, not a database error.
        for micros in [-8_000_000_000_000_000_000, 8_000_000_000_000_000_000] {
            let far = PointKey {
                time: DateTime::<Utc>::from_timestamp_micros(micros).unwrap(),
                ..k
            };
            assert!(PointKey::decode(&far.encode()).is_err(), "{micros}");
        }
    }
}
