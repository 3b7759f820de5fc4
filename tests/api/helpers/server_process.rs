//! A free port for servers a test runs as processes of their own.

/// A TCP port nothing listens on right now (for servers and clusters a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
