//! Every PostgreSQL advisory-lock key the service takes, by name, so that no two uses
//! collide and a reader finds them all in one place. All keys start with `7236`, the
//! service's own prefix.

/// Held while migrations run (session lock), so two processes never migrate at once.
pub const MIGRATIONS: i64 = 7_236_001;

/// First key of the two-key form for creating one week's partition (second key: the
/// week's index), held for the creating transaction.
pub const PARTITION_CLASS: i32 = 7_236_002;

/// First key of the two-key form for one session's writes (second key: a hash of the
/// session id), held for the writing transaction.
pub const SESSION_CLASS: i32 = 7_236_003;

/// The `partition-premake` job.
pub const PARTITION_PREMAKE_JOB: i64 = 7_236_101;

/// The `retention` job.
pub const RETENTION_JOB: i64 = 7_236_102;

/// The `rollup-refresh` job; deletions also take it for their transaction to keep the
/// job out while they forget rollups.
pub const ROLLUP_REFRESH_JOB: i64 = 7_236_103;

/// The `rollup-vacuum` job.
pub const ROLLUP_VACUUM_JOB: i64 = 7_236_104;

/// The `compression` job.
pub const COMPRESSION_JOB: i64 = 7_236_105;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_locks_share_a_key() {
        let single = [
            MIGRATIONS,
            PARTITION_PREMAKE_JOB,
            RETENTION_JOB,
            ROLLUP_REFRESH_JOB,
            ROLLUP_VACUUM_JOB,
            COMPRESSION_JOB,
        ];
        let mut keys: Vec<i64> = single.to_vec();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), single.len());
        // The two-key classes are a different lock space from the one-key form, but keep
        // them apart anyway so a reader never wonders.
        for class in [PARTITION_CLASS, SESSION_CLASS] {
            assert!(!keys.contains(&i64::from(class)));
        }
    }
}
