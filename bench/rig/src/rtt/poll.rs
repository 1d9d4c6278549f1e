//! The one path from RTT bytes to log lines: a thread that reads the
//! up-channels every [`RTT_POLL`] (RTT has no interrupt towards the host:
//! polling is how every RTT host works) and cuts each channel's bytes into
//! [`LogLine`]s stamped `LogSource::Rtt`. The lab rig reads through its
//! probe, the emulated rig through a QEMU board's gdbstub; each hands its
//! lines and failures on to its own log.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::lab::logs::{now_ns, LineAssembler};
use crate::lab::RttData;
use crate::{LogLine, LogSource, RigError};

/// How often the RTT up-channels are read by default. 10 ms keeps a 1 KiB
/// channel buffer from overflowing at ~100 KB/s of device output.
pub const RTT_POLL: Duration = Duration::from_millis(10);

/// Each up-channel's partial line, between reads.
#[derive(Debug, Default)]
pub struct RttLines {
    channels: BTreeMap<usize, LineAssembler>,
}

impl RttLines {
    /// The lines `data` completed, stamped `at_ns`.
    pub fn push(&mut self, data: Vec<RttData>, at_ns: u64) -> Vec<LogLine> {
        let mut out = Vec::new();
        for d in data {
            out.extend(
                self.channels
                    .entry(d.channel)
                    .or_insert_with(|| {
                        LineAssembler::new(LogSource::Rtt {
                            channel: d.channel,
                            name: d.name.clone(),
                        })
                    })
                    .push(&d.bytes, at_ns),
            );
        }
        out
    }

    /// Reads once with `read` and returns the lines completed now.
    pub fn read(
        &mut self,
        read: impl FnOnce() -> Result<Vec<RttData>, RigError>,
    ) -> Result<Vec<LogLine>, RigError> {
        let data = read()?;
        Ok(self.push(data, now_ns()))
    }
}

/// Runs `step` on its own thread every `interval` until dropped; dropping
/// it runs `step` once more (the last bytes before a power cut) and joins.
#[derive(Debug)]
pub struct RttPoller {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RttPoller {
    /// Starts the thread; `step` reads once and hands the lines on.
    pub fn start(
        interval: Duration,
        mut step: impl FnMut(&mut RttLines) + Send + 'static,
    ) -> Result<RttPoller, RigError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rtt poller".into())
            .spawn(move || {
                let mut lines = RttLines::default();
                loop {
                    step(&mut lines);
                    // Waits on the stop signal, at most one interval.
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            step(&mut lines);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| RigError::Io {
                what: "RTT poller thread".into(),
                source: e,
            })?;
        Ok(RttPoller {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for RttPoller {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
