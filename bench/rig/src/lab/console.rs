//! The DUT's serial console, read on its own blocking thread.
//!
//! Serial reads block; a plain thread with a short read timeout keeps the
//! async side free and lets the thread notice it should stop.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::ConsoleConfig;
use super::logs::{now_ns, LineAssembler, LogSink};
use crate::{LogSource, RigError};

/// How long one read may block: the bound on how late the thread sees `stop`.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// How long connecting to a network console may take.
const NETWORK_CONNECT: Duration = Duration::from_secs(5);

/// A console being read into a [`LogSink`] until dropped.
#[derive(Debug)]
pub struct Console {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Console {
    /// Open the port now (so a wrong path fails here, naming `console.port`) and start reading.
    /// `provider`: who serves it (a labgrid place's exporter), named in its failures.
    pub fn open(
        config: &ConsoleConfig,
        provider: Option<&str>,
        sink: LogSink,
    ) -> Result<Console, RigError> {
        let name = match provider {
            Some(p) => format!("{} ({p})", config.port),
            None => config.port.clone(),
        };
        let what = || format!("console.port {name} at {} baud", config.baud);
        // A network console (a labgrid place's NetworkSerialPort, ser2net): RFC 2217.
        if config.port.starts_with("rfc2217://") {
            let (host, port) = super::rfc2217::parse_url(&config.port).ok_or_else(|| {
                RigError::Setup(format!("{}: not rfc2217://host:port", config.port))
            })?;
            let port = super::rfc2217::Rfc2217Port::open(
                &host,
                port,
                config.baud.get(),
                NETWORK_CONNECT,
                READ_TIMEOUT,
            )
            .map_err(|e| RigError::Io {
                what: what(),
                source: e,
            })?;
            return Console::start(name, port, sink);
        }
        let port = serialport::new(&config.port, config.baud.get())
            .timeout(READ_TIMEOUT)
            .open_native()
            .map_err(|e| RigError::Io {
                what: what(),
                source: e.into(),
            })?;
        Console::start(name, port, sink)
    }

    fn start(
        name: String,
        port: impl Read + Send + 'static,
        sink: LogSink,
    ) -> Result<Console, RigError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("console {name}"))
            .spawn({
                let stop = stop.clone();
                move || read_lines(port, &name, &sink, &stop)
            })
            .map_err(|e| RigError::Io {
                what: "console thread".into(),
                source: e,
            })?;
        Ok(Console {
            stop,
            thread: Some(thread),
        })
    }
}

fn read_lines(mut port: impl Read, name: &str, sink: &LogSink, stop: &AtomicBool) {
    let mut lines = LineAssembler::new(LogSource::Console);
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        match port.read(&mut buf) {
            Ok(0) => {
                // End of stream: a pty whose other side went away. Nothing more will come.
                sink.push(lines.flush(now_ns()).into_iter().collect());
                sink.fail(format!("console {name}: closed"));
                return;
            }
            Ok(n) => sink.push(lines.push(&buf[..n], now_ns())),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                sink.push(lines.flush(now_ns()).into_iter().collect());
                sink.fail(format!("console {name}: {e}"));
                return;
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Joining (at most one read timeout) releases the port before a new rig reopens it.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network console whose server goes away (a labgrid exporter that
    /// died, its ser2net with it): the lines before are kept, and the failure
    /// names the port and who provided it.
    #[tokio::test]
    async fn a_network_console_that_closes_names_its_provider() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The client's negotiation first (unread, closing would reset the connection).
            let mut hello = [0u8; 22];
            std::io::Read::read_exact(&mut s, &mut hello).unwrap();
            std::io::Write::write_all(&mut s, b"booted\r\n").unwrap();
            // Closed here: the console's end of the stream.
        });
        let sink = LogSink::default();
        let config = ConsoleConfig {
            port: format!("rfc2217://127.0.0.1:{port}"),
            baud: 115_200.try_into().unwrap(),
        };
        let _console = Console::open(
            &config,
            Some("labgrid exporter e1 (place p on c:1)"),
            sink.clone(),
        )
        .unwrap();
        server.join().unwrap();
        let mut lines = Vec::new();
        let failure = loop {
            assert!(sink.wait(Duration::from_secs(10)).await, "no output");
            match sink.drain() {
                Ok(got) => lines.extend(got.into_iter().map(|l| l.text)),
                Err(e) => break e.to_string(),
            }
        };
        // A failure is reported first; the lines stay queued for the next call.
        lines.extend(sink.drain().unwrap().into_iter().map(|l| l.text));
        assert_eq!(lines, ["booted"]);
        assert_eq!(
            failure,
            format!(
                "console rfc2217://127.0.0.1:{port} (labgrid exporter e1 (place p on c:1)): closed"
            )
        );
    }
}
