//! The listening socket: binding (always with `SO_REUSEADDR`, so the port can
//! be bound again after an outage while old connections are still open) and
//! the accept loop that spawns one task per connection.

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use log::debug;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

use crate::conn;
use crate::record::EventKind;
use crate::state::Shared;

/// Large enough that a burst of thousands of connects is not dropped by the
/// kernel (it caps this at `somaxconn` anyway).
const BACKLOG: u32 = 4096;

/// Binding the same port again can race with the kernel releasing it.
const BIND_ATTEMPTS: u32 = 50;
const BIND_RETRY_DELAY: Duration = Duration::from_millis(20);

/// An accept error such as EMFILE repeats at once; pausing avoids a hot loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Sent to the accept loop to close the listener; it acknowledges once the
/// socket is closed.
pub(crate) type StopListening = oneshot::Sender<std_mpsc::Sender<()>>;

fn bind_once(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Binds `addr` and spawns the accept loop; must run on the server runtime.
pub(crate) async fn listen(shared: Arc<Shared>, addr: SocketAddr) -> io::Result<(SocketAddr, StopListening)> {
    let mut attempt = 1;
    let listener = loop {
        match bind_once(addr) {
            Ok(listener) => break listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < BIND_ATTEMPTS => {
                debug!("loopback: bind {addr} attempt {attempt} failed: {e}");
                attempt += 1;
                tokio::time::sleep(BIND_RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    };
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel();
    tokio::spawn(accept_loop(shared, listener, stop_rx));
    Ok((local, stop_tx))
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: oneshot::Receiver<std_mpsc::Sender<()>>) {
    loop {
        tokio::select! {
            biased;
            stop = &mut stop => {
                drop(listener);
                if let Ok(ack) = stop {
                    let _ = ack.send(());
                }
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = shared.next_conn();
                    shared.record.update(|s| s.accepted += 1);
                    shared.event(conn, None, EventKind::Accepted { peer });
                    tokio::spawn(conn::serve(shared.clone(), stream, peer, conn));
                }
                Err(e) => {
                    debug!("loopback: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }
}
