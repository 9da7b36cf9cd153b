//! Free loopback ports and listeners.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::ServiceError;

/// `n` distinct free ports on 127.0.0.1, found by binding port 0 (all held until every port is
/// known, so they differ). A port may be taken again before the caller binds it; callers that
/// cannot bind themselves (rumqttd) must check that their listener answers.
pub fn free_ports(n: usize) -> Result<Vec<SocketAddr>, ServiceError> {
    let held: Vec<StdListener> = (0..n)
        .map(|_| {
            StdListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| ServiceError::Bind {
                addr: (Ipv4Addr::LOCALHOST, 0).into(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    held.iter()
        .map(|l| {
            l.local_addr().map_err(|source| ServiceError::Io {
                what: "local address".into(),
                source,
            })
        })
        .collect()
}

/// A listener on `addr` with `SO_REUSEADDR`, and `SO_REUSEPORT` when `reuse_port` (so several
/// edge processes can share one port and the kernel spreads connections among them).
pub fn listen(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, ServiceError> {
    let bind_err = |source| ServiceError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(bind_err)?;
    }
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket.listen(4096).map_err(bind_err)?;
    TcpListener::from_std(socket.into()).map_err(bind_err)
}
