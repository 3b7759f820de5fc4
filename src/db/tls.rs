//! Keeps OpenSSL usable until the process is gone.
//!
//! libpq encrypts connections with OpenSSL (`sslmode=prefer` by default, even over
//! loopback). On its first use, OpenSSL registers an `atexit` handler that frees all its
//! state when the main thread exits, while the pool's threads may still read, write or
//! close TLS connections: such a thread then dies with SIGSEGV (diesel-rs/diesel#3441,
//! openssl/openssl#6214), so the process exits with a crash after its work is done. Seen
//! here in the test processes, after a test had passed. Asking OpenSSL for
//! `OPENSSL_INIT_NO_ATEXIT` before anything else initialises it turns the handler off;
//! the operating system frees the memory instead. libpq's headers depend on OpenSSL's,
//! so `libcrypto` is there wherever this crate builds.

use std::ffi::{c_int, c_void};
use std::sync::Once;

/// `OPENSSL_INIT_NO_ATEXIT` from `<openssl/crypto.h>` (OpenSSL 1.1.1b and later).
const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;

#[link(name = "crypto")]
unsafe extern "C" {
    fn OPENSSL_init_crypto(opts: u64, settings: *const c_void) -> c_int;
}

/// Turns OpenSSL's exit-time cleanup off. Call it before the first connection; calls
/// after the first do nothing. The first initialisation decides, so a call after libpq
/// has set OpenSSL up has no effect (and does no harm).
pub fn keep_openssl_until_exit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a documented OpenSSL entry point, called once with a flag and no
        // settings; it only initialises the library's global state.
        let ok = unsafe { OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, std::ptr::null()) };
        if ok != 1 {
            tracing::warn!(
                "OpenSSL refused OPENSSL_INIT_NO_ATEXIT; a crash at exit stays possible"
            );
        }
    });
}
