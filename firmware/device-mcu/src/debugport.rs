//! Fault `listen-debug`: a TCP listener on the reference device's debug
//! port (2323, as device-native's) that accepts every connection, sends a
//! banner and closes it. Without the fault no listening socket exists, so
//! a SYN to any port is answered with a reset by smoltcp.
//!
//! The listener is two more sockets in the set, both listening on the
//! port (smoltcp has no backlog: while one finishes a connection, the other
//! takes the next); [`poll`] (used wherever the device drives its
//! interface) services them after each `Interface::poll`.

use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::lan9118::Lan9118;

/// The reference device's debug port (device-native's `DEBUG_PORT`).
pub const DEBUG_PORT: u16 = 2323;
/// What a connection to it receives (device-native's banner).
const BANNER: &[u8] = b"debug shell\r\n> ";

/// The debug listener's sockets, when the fault is on.
pub type Listeners = Option<[SocketHandle; 2]>;

/// Drives the interface, then the debug listener when there is one; when
/// no socket changed (every received frame handled, nothing sent), sleeps
/// until the next interrupt — the 1 kHz SysTick at the latest — so every
/// loop that waits through here (for a record, a timer, the backoff) idles
/// the core instead of spinning.
pub fn poll(
    iface: &mut Interface,
    eth: &mut Lan9118,
    sockets: &mut SocketSet<'_>,
    t: Instant,
    debug: Listeners,
) {
    let changed = iface.poll(t, eth, sockets);
    for handle in debug.into_iter().flatten() {
        service(sockets.get_mut::<tcp::Socket>(handle));
    }
    if changed == PollResult::None {
        cortex_m::asm::wfi();
    }
}

/// Listen, greet, close, listen again.
fn service(socket: &mut tcp::Socket) {
    match socket.state() {
        tcp::State::Closed => {
            // A client that never closes cannot hold the port.
            socket.set_timeout(Some(smoltcp::time::Duration::from_secs(10)));
            // Cannot fail: a closed socket and a non-zero port.
            let _ = socket.listen(DEBUG_PORT);
        }
        tcp::State::Established if socket.can_send() => {
            let _ = socket.send_slice(BANNER);
            socket.close();
        }
        tcp::State::CloseWait => socket.close(),
        // Free the port for the next client at once.
        tcp::State::TimeWait => socket.abort(),
        _ => {}
    }
}
