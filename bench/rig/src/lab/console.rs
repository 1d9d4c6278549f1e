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
    pub fn open(config: &ConsoleConfig, sink: LogSink) -> Result<Console, RigError> {
        let what = || format!("console.port {} at {} baud", config.port, config.baud);
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
            return Console::start(config, port, sink);
        }
        let port = serialport::new(&config.port, config.baud.get())
            .timeout(READ_TIMEOUT)
            .open_native()
            .map_err(|e| RigError::Io {
                what: what(),
                source: e.into(),
            })?;
        Console::start(config, port, sink)
    }

    fn start(
        config: &ConsoleConfig,
        port: impl Read + Send + 'static,
        sink: LogSink,
    ) -> Result<Console, RigError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("console {}", config.port))
            .spawn({
                let stop = stop.clone();
                let name = config.port.clone();
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
