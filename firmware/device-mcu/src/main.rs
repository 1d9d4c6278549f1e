//! The reference device on a Cortex-M3: QEMU's mps2-an385 with its CMSDK
//! UART as the console and its LAN9118 Ethernet controller under smoltcp.
//! It reads its provisioning at run time from the provisioning region of
//! its flash map (`provision.rs`, format `provfmt.rs`): with a valid record
//! it takes the record's IPv4 address, answers ICMP echo, takes the time
//! from SNTP, opens a mutually authenticated TLS 1.3 connection to the hub
//! (`secure.rs`) and runs device-core's Device machine over it (`app.rs`). With no
//! record it says so, connects to no hub, and runs the bring-up diagnostic
//! (build-time address, one plain TCP hello to a peer); with a record that
//! fails its checks it says why and halts.
//!
//! Console lines are the interface the host-side tests (rig/) wait on:
//! `device-mcu: boot`, `provisioning: …`, `net: up ip=…`, `tcp: …` in the
//! bring-up diagnostic; `time: …`, `tls: …` and `app: …` when provisioned.

#![no_std]
#![no_main]

extern crate alloc;

mod app;
mod clock;
mod config;
mod debugport;
mod der_lite;
mod dns;
mod est;
mod faults;
mod heap;
mod lan9118;
mod provfmt;
mod provision;
mod rtt;
mod secure;
mod sntp;
mod stack;
mod storage;
mod tls;
mod transport;
mod uart;
mod verify;

use core::fmt::Write;
use core::panic::PanicInfo;
use cortex_m_rt::{entry, exception};
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr, IpEndpoint};

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::uart::Uart;

/// The line the TCP peer receives; the rig test checks it.
const HELLO: &[u8] = b"hello from device-mcu\n";
/// How long to wait before dialling again after a refused or reset connection.
const REDIAL_MS: u64 = 1000;

#[entry]
fn main() -> ! {
    stack::paint();
    heap::init();
    rtt::init();
    let mut con = Uart::uart0();
    let _ = writeln!(con, "device-mcu: boot (mps2-an385, cortex-m3)");
    let _ = writeln!(con, "device-mcu: faults=[{}]", faults::list());

    let mut clock = Clock::start();
    start_idle_tick();

    // SAFETY: 0x4020_0000 is the mps2-an385's LAN9118 (hw/arm/mps2.c), and
    // this is the only driver instance: `main` runs once and never returns.
    let (mut eth, info) = match unsafe { Lan9118::new(lan9118::MPS2_AN385_BASE) } {
        Ok(found) => found,
        Err(e) => {
            let _ = writeln!(con, "lan9118: bring-up failed: {e:?}");
            halt(&mut con, "no network")
        }
    };
    let _ = writeln!(
        con,
        "lan9118: id_rev={:#010x} mac={} link={}",
        info.id_rev,
        eth.mac(),
        if info.link_up { "up" } else { "down" }
    );

    let prov = match provision::load() {
        Ok(prov) => Some(prov),
        Err(provfmt::Refused::NoRecord) => {
            let _ = writeln!(
                con,
                "provisioning: none in the region at {:#010x}: not connecting to a hub (bring-up diagnostic only)",
                provision::PROVISION_ADDR
            );
            None
        }
        Err(why) => {
            let _ = writeln!(
                con,
                "provisioning: refused the record at {:#010x}: {why:?}",
                provision::PROVISION_ADDR
            );
            halt(&mut con, "no usable provisioning, not connecting")
        }
    };
    let net = config::network();
    let address = prov.as_ref().map_or(net.address, |p| p.address);
    let mut iface_config = Config::new(HardwareAddress::Ethernet(eth.mac()));
    if let Some(p) = &prov {
        iface_config.random_seed = dns::random_seed(p.seed, eth.mac().as_bytes());
    }
    let mut iface = Interface::new(iface_config, &mut eth, now(&mut clock));
    // IPv6: the link-local address only, from the MAC by modified EUI-64
    // (RFC 4291 appendix A), as a host without configuration takes one; no
    // router solicitation, no global address.
    let link_local = eui64_link_local(eth.mac().0);
    iface.update_ip_addrs(|addrs| {
        if addrs.push(IpCidr::Ipv4(address)).is_err()
            || addrs.push(IpCidr::new(link_local.into(), 64)).is_err()
        {
            let _ = writeln!(con, "net: no room for the addresses");
        }
    });
    let _ = writeln!(con, "net: ipv6 link-local {link_local}");
    if let Some(prov) = prov {
        if iface
            .routes_mut()
            .add_default_ipv4_route(prov.gateway)
            .is_err()
        {
            let _ = writeln!(con, "net: no room for the default route");
        }
        let _ = writeln!(
            con,
            "net: up ip={} gw={} (provisioned) hub={} sntp={}:{}",
            prov.address,
            prov.gateway,
            dns::HubText(&prov),
            prov.sntp.0,
            prov.sntp.1
        );
        let _ = writeln!(
            con,
            "provisioning: record v{} at {:#010x}: device {} (ca {} B, client cert {} B, key {} B, time floor unix={})",
            prov.version,
            provision::PROVISION_ADDR,
            prov.device_id,
            prov.ca.len(),
            prov.client_cert.len(),
            prov.client_key.len(),
            prov.time_floor
        );
        secure::run(
            &mut con,
            &mut clock,
            &mut iface,
            &mut eth,
            &prov,
            faults::active(),
        )
    }
    let _ = writeln!(con, "net: up ip={} (static) peer={}", net.address, net.peer);

    let mut tcp_rx = [0u8; 1024];
    let mut tcp_tx = [0u8; 1024];
    let tcp_socket = tcp::Socket::new(
        tcp::SocketBuffer::new(&mut tcp_rx[..]),
        tcp::SocketBuffer::new(&mut tcp_tx[..]),
    );
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let tcp_handle = sockets.add(tcp_socket);

    let peer = IpEndpoint::new(net.peer.into(), net.peer_port);
    let mut local_port: u16 = 49152;
    let mut next_dial = Instant::from_millis(0);
    let mut connected = false;
    let mut hello_sent = false;

    loop {
        let t = now(&mut clock);
        iface.poll(t, &mut eth, &mut sockets);
        let socket = sockets.get_mut::<tcp::Socket>(tcp_handle);

        if !socket.is_open() && !hello_sent && t >= next_dial {
            local_port = if local_port == u16::MAX {
                49152
            } else {
                local_port + 1
            };
            match socket.connect(iface.context(), peer, local_port) {
                Ok(()) => {
                    let _ = writeln!(con, "tcp: dialling {peer}");
                }
                Err(e) => {
                    let _ = writeln!(con, "tcp: connect error {e:?}");
                }
            }
            next_dial = t + smoltcp::time::Duration::from_millis(REDIAL_MS);
        }
        if socket.may_send() && !connected {
            connected = true;
            let _ = writeln!(con, "tcp: connected {peer} from port {local_port}");
        }
        // Queued whole or not at all: a partial write would be resent.
        let room = socket.send_capacity() - socket.send_queue();
        if connected && !hello_sent && socket.may_send() && room >= HELLO.len() {
            match socket.send_slice(HELLO) {
                Ok(n) if n == HELLO.len() => {
                    hello_sent = true;
                    let _ = writeln!(con, "tcp: sent hello at uptime_ms={}", clock.now_ms());
                }
                Ok(n) => {
                    let _ = writeln!(con, "tcp: hello cut at {n} bytes");
                    socket.abort();
                }
                Err(e) => {
                    let _ = writeln!(con, "tcp: send error {e:?}");
                }
            }
        }
        if hello_sent && socket.can_recv() {
            // The peer's answer: one line, shown on the console; then close.
            let mut line = [0u8; 64];
            if let Ok(n) = socket.recv_slice(&mut line) {
                let text = core::str::from_utf8(&line[..n]).unwrap_or("<not UTF-8>");
                let _ = writeln!(con, "tcp: received {:?}", text.trim_end());
                socket.close();
            }
        } else if hello_sent && !socket.may_recv() && socket.is_open() {
            // The peer closed without answering.
            socket.close();
        }
        if !socket.is_open() && connected && !hello_sent {
            // Reset before the hello went out: dial again.
            connected = false;
        }
        if hello_sent && socket.state() == tcp::State::Closed && connected {
            connected = false;
            let (rx, tx, err) = eth.counters();
            let _ = writeln!(
                con,
                "tcp: closed at uptime_ms={}; frames rx={rx} tx={tx} rx_errors={err}",
                clock.now_ms()
            );
            report_memory(&mut con);
        }
    }
}

/// Prints the stack's and the heap's peak use (the RAM figures).
fn report_memory(con: &mut Uart) {
    match stack::peak() {
        Some(bytes) => {
            let _ = writeln!(con, "stack: peak={bytes} bytes");
        }
        None => {
            let _ = writeln!(con, "stack: peak beyond the painted 256 KB");
        }
    }
    let _ = writeln!(con, "heap: peak={} bytes of {}", heap::peak(), heap::SIZE);
}

/// The IPv6 link-local address of `mac` by modified EUI-64: `fe80::`, the
/// MAC with `ff:fe` in its middle, the universal/local bit flipped.
fn eui64_link_local(mac: [u8; 6]) -> smoltcp::wire::Ipv6Address {
    let [a, b, c, d, e, f] = mac;
    smoltcp::wire::Ipv6Address::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// The core's clock on mps2-an385 (QEMU's `hw/arm/mps2.c`: 25 MHz).
const SYSCLK_HZ: u32 = 25_000_000;

/// SysTick at 1 kHz, its interrupt on: what wakes the core from the `wfi`
/// an idle network poll ends with (`debugport::poll`), so the device
/// sleeps between polls instead of spinning — on real silicon it saves
/// power, under QEMU a host core per board.
fn start_idle_tick() {
    use cortex_m::peripheral::syst::SystClkSource;
    let Some(mut core) = cortex_m::Peripherals::take() else {
        return;
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(SYSCLK_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();
}

/// The 1 kHz tick: it only wakes the core (see `start_idle_tick`).
#[exception]
fn SysTick() {}

fn now(clock: &mut Clock) -> Instant {
    Instant::from_millis(i64::try_from(clock.now_ms()).unwrap_or(i64::MAX))
}

fn halt(con: &mut Uart, why: &str) -> ! {
    let _ = writeln!(con, "device-mcu: halted: {why}");
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    let mut con = Uart::uart0();
    let _ = writeln!(con, "device-mcu: panic: {info}");
    loop {
        cortex_m::asm::wfi();
    }
}
