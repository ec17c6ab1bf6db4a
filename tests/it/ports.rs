//! Loopback ports that no test running beside this one can take: one where nothing listens
//! for as long as a test holds it, and reserved ones for a sandbox that goes down and comes
//! back. (A port taken from `bind(…:0)` and freed again can be handed to the next test that
//! binds port 0.)

#![allow(dead_code)]

use dbprov::sandbox::{self, Sandbox, SandboxConfig};

/// Loopback ports for this test binary alone, outside the kernel's ephemeral range: no
/// `bind(…:0)` and no outgoing connection of a test running beside it can be given one, so
/// a sandbox on it can go down and come back without another test taking its address. Each
/// call hands out ports no earlier call has.
fn reserved_ports() -> impl Iterator<Item = u16> {
    static NEXT: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (ephemeral_low / 2, ephemeral_low);
    std::iter::from_fn(move || {
        let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
        // Another test binary beside this one starts elsewhere in the range.
        let port =
            next.unwrap_or_else(|| low + (std::process::id() % u32::from(high - low)) as u16);
        *next = Some(if port + 1 >= high { low } else { port + 1 });
        Some(port)
    })
    .take(usize::from(high - low))
}

/// A loopback port where nothing listens, for as long as this lives: a socket is bound to it
/// but never listens, so a connection to it is refused and no other socket can take the port
/// meanwhile. (A port taken from `bind(…:0)` and freed again can be handed to the next test
/// that binds port 0, and answer.)
pub struct ClosedPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a new socket, owned once; bind and getsockname get a sockaddr_in and its
        // size, and write no more than that.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let bound = libc::bind(
                socket.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                size,
            );
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = size;
            let named = libc::getsockname(
                socket.as_raw_fd(),
                (&raw mut addr).cast::<libc::sockaddr>(),
                &mut len,
            );
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            ClosedPort {
                _socket: socket,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts a sandbox without faults on one of the [`reserved_ports`], for a test that takes
/// it down and brings it back: no other test can take its address meanwhile.
pub async fn sandbox_on_reserved_port() -> Sandbox {
    for port in reserved_ports() {
        // Bound here, not checked and bound again: nothing can take the port in between.
        if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            let config = SandboxConfig {
                seed: Some(1),
                ..SandboxConfig::default()
            };
            return sandbox::serve(listener, config).expect("sandbox starts");
        }
    }
    panic!("no free loopback port outside the ephemeral range");
}
