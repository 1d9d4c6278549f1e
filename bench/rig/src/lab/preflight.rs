//! Before a lab run starts any case: the rig file's hardware is there — the
//! console's serial port opens, the power relay answers a connection, the
//! hub's address belongs to this host. Each problem is one line naming the
//! field, so a run stops in seconds instead of failing every case.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::config::{ModbusEndpoint, RigConfig};

/// How long the relay may take to accept a TCP connection.
const RELAY_CONNECT: Duration = Duration::from_secs(3);

fn open_device(path: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(|_| ())
}

fn connect(host: &str, port: u16) -> std::io::Result<()> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("cannot resolve"))?;
    TcpStream::connect_timeout(&addr, RELAY_CONNECT).map(|_| ())
}

/// Checks what `config` names; the first problem, as one line.
pub fn preflight(config: &RigConfig) -> Result<(), String> {
    let file = config.file.display();
    if let Some(c) = &config.console {
        match super::rfc2217::parse_url(&c.port) {
            Some((host, port)) => {
                connect(&host, port).map_err(|e| {
                    format!(
                        "{file}: `console.port` {}: the RFC 2217 server does not answer ({e})",
                        c.port
                    )
                })?;
            }
            None => open_device(&c.port)
                .map_err(|e| format!("{file}: `console.port` {}: {e}", c.port))?,
        }
    }
    if let Some(p) = &config.power {
        match &p.relay {
            ModbusEndpoint::Tcp { host, port } => {
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("{file}: `power.tcp` {host}:{port}: cannot resolve"))?;
                TcpStream::connect_timeout(&addr, RELAY_CONNECT).map_err(|e| {
                    format!("{file}: `power.tcp` {host}:{port}: the relay does not answer ({e}); is it powered and on the bench's network?")
                })?;
            }
            ModbusEndpoint::Rtu { port, .. } => {
                open_device(port).map_err(|e| format!("{file}: `power.rtu` {port}: {e}"))?;
            }
        }
    }
    if let Some(p) = &config.power_port {
        let url = p.url.replace("{index}", &p.index.to_string());
        let authority = url.parse::<hyper::Uri>().ok().and_then(|u| {
            Some((
                u.host()?.trim_matches(['[', ']']).to_owned(),
                u.port_u16().unwrap_or(80),
            ))
        });
        let Some((host, port)) = authority else {
            return Err(format!(
                "{file}: the place's power port URL {url:?} has no host"
            ));
        };
        connect(&host, port).map_err(|e| {
            format!("{file}: the place's power port {host}:{port} does not answer ({e})")
        })?;
    }
    if let Some(h) = &config.hub {
        TcpListener::bind((h.ipv4, 0)).map_err(|e| {
            format!(
                "{file}: `hub.ipv4` {}: not an address of this host ({e}); the hub listens there",
                h.ipv4
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> RigConfig {
        let text = format!("[dut]\nipv4 = \"192.0.2.20\"\n{extra}");
        RigConfig::parse(&text, Path::new("/lab/rig.toml")).unwrap()
    }

    #[test]
    fn each_missing_piece_of_hardware_is_one_line_naming_its_field() {
        let e = preflight(&config(
            "[console]\nport = \"/nonexistent/ttyACM9\"\nbaud = 115200\n",
        ))
        .unwrap_err();
        assert!(
            e.starts_with("/lab/rig.toml: `console.port` /nonexistent/ttyACM9:"),
            "{e}"
        );
        // A relay address nothing listens on: refused at once.
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = preflight(&config(&format!(
            "[power]\ntcp = \"{free}\"\nunit = 1\ncoil = 0\n"
        )))
        .unwrap_err();
        assert!(
            e.contains("`power.tcp`") && e.contains("does not answer"),
            "{e}"
        );
        let e = preflight(&config("[hub]\nipv4 = \"192.0.2.1\"\n")).unwrap_err();
        assert!(
            e.contains("`hub.ipv4` 192.0.2.1: not an address of this host"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn present_hardware_passes() {
        let relay = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = config(&format!(
            "[power]\ntcp = \"{}\"\nunit = 1\ncoil = 0\n\n[hub]\nipv4 = \"127.0.0.1\"\n",
            relay.local_addr().unwrap()
        ));
        preflight(&c).unwrap();
    }
}
