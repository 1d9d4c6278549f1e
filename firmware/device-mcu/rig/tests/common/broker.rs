//! mosquitto as the hub stand-in, and a client of the debug port: what
//! `mqtt.rs`, `tls.rs` and `board_boot.rs` share.

use device_mcu_rig::NetNs;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// mosquitto running in the namespace; its log arrives as lines. Killed on drop.
pub struct Broker {
    child: Child,
    lines: Receiver<String>,
    /// Every log line seen so far (for failure messages).
    pub seen: Vec<String>,
}

impl Broker {
    /// Starts mosquitto with `conf` in `ns`; returns once it listens on `port`.
    pub fn start(ns: &NetNs, conf: &Path, port: u16) -> Self {
        let mut child = ns
            .command("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[mosquitto] {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut broker = Broker {
            child,
            lines,
            seen: Vec::new(),
        };
        broker.wait_line(
            &format!("listen socket on port {port}"),
            Duration::from_secs(30),
        );
        broker
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    pub fn wait_line(&mut self, needles: &str, within: Duration) -> String {
        let parts: Vec<&str> = needles.split('|').collect();
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "mosquitto: no line with {needles:?} within {within:?}; saw {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("mosquitto exited before {needles:?}; saw {:?}", self.seen)
                }
            }
        }
    }

    /// Every line logged so far (without waiting).
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}

impl Broker {
    /// Freezes mosquitto (SIGSTOP): the kernel keeps its connections, it
    /// answers nothing. Drop's SIGKILL ends it all the same.
    pub fn freeze(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: signals our own child (`ip netns exec` execs mosquitto, so
        // this pid is mosquitto's), which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    }
}

/// mosquitto's configuration as the hub stand-in: TLS 1.3 on `host:port`
/// with `dir`'s `ca.pem`, `server.pem` and `server.key`, client
/// certificates required (the certificate's CN is the user), everything
/// logged to stderr.
pub fn mosquitto_conf(port: u16, host: &str, dir: &Path) -> String {
    format!(
        "user root\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         persistence false\n\
         log_dest stderr\n\
         log_type all\n\
         listener {port} {host}\n\
         cafile {dir}/ca.pem\n\
         certfile {dir}/server.pem\n\
         keyfile {dir}/server.key\n\
         tls_version tlsv1.3\n\
         require_certificate true\n\
         use_identity_as_username true\n",
        dir = dir.display()
    )
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// From `ns`, a TCP connection to `device`'s debug port (2323, the
/// reference device's): the NI view of fault `listen-debug`.
pub fn dial_debug_port(ns: &NetNs, device: &str) -> std::io::Result<Vec<u8>> {
    let device: Ipv4Addr = device.parse().unwrap();
    ns.spawn_inside(move || {
        let to = SocketAddr::from((device, 2323));
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(20))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut banner = Vec::new();
        stream.read_to_end(&mut banner)?;
        Ok(banner)
    })
    .unwrap()
    .join()
    .unwrap()
    .unwrap()
}
