//! Device output as lines: bytes from the console or an RTT channel are cut at
//! newlines, stamped when the line completed, and queued until `logs()` drains them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::{LogLine, LogSource, RigError};

/// A line longer than this is cut, so a device that never prints '\n' cannot
/// grow the bench's memory without bound.
pub const MAX_LINE: usize = 4096;

/// Nanoseconds since the Unix epoch, bench clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Cuts one byte stream into lines; a partial line waits for the rest.
#[derive(Debug)]
pub struct LineAssembler {
    source: LogSource,
    partial: Vec<u8>,
}

impl LineAssembler {
    /// An assembler whose lines are all stamped as coming from `source`.
    pub fn new(source: LogSource) -> LineAssembler {
        LineAssembler {
            source,
            partial: Vec::new(),
        }
    }

    /// Feed bytes; returns the lines they completed. `\r\n` and `\n` both end a line.
    pub fn push(&mut self, bytes: &[u8], at_ns: u64) -> Vec<LogLine> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take(at_ns));
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    lines.push(self.take(at_ns));
                }
            }
        }
        lines
    }

    /// The unterminated rest, if any (when the stream ends).
    pub fn flush(&mut self, at_ns: u64) -> Option<LogLine> {
        (!self.partial.is_empty()).then(|| self.take(at_ns))
    }

    fn take(&mut self, at_ns: u64) -> LogLine {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let text = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        LogLine {
            source: self.source.clone(),
            at_ns,
            text,
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<LogLine>,
    /// Every console line since the rig opened (what cases wait on; the
    /// queue above is drained by `logs()`).
    console: Vec<String>,
    /// The first failure since the last drain; later ones repeat it and are dropped.
    error: Option<String>,
}

/// Where the reader threads put lines and failures; `logs()` drains it.
#[derive(Debug, Clone, Default)]
pub struct LogSink {
    pending: Arc<Mutex<Pending>>,
    // Wakes waiters when something arrives, so tests wait on lines, not on time.
    arrived: Arc<Notify>,
}

impl LogSink {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A reader thread that panicked leaves plain data behind; keep using it.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        let mut p = self.lock();
        p.console.extend(
            lines
                .iter()
                .filter(|l| l.source == LogSource::Console)
                .map(|l| l.text.clone()),
        );
        p.lines.extend(lines);
        drop(p);
        self.arrived.notify_waiters();
    }

    pub fn fail(&self, error: String) {
        self.lock().error.get_or_insert(error);
        self.arrived.notify_waiters();
    }

    /// Everything since the last drain; a pending failure is reported first
    /// (the lines stay queued for the next call).
    pub fn drain(&self) -> Result<Vec<LogLine>, RigError> {
        let mut p = self.lock();
        if let Some(e) = p.error.take() {
            return Err(RigError::Device(e));
        }
        Ok(std::mem::take(&mut p.lines))
    }

    /// Every console line since the rig opened.
    pub fn console_lines(&self) -> Vec<String> {
        self.lock().console.clone()
    }

    /// Waits until a console line from index `from` on matches `pred`: the
    /// line and its index, or `None` within `guard`.
    pub async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: &dyn Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let deadline = tokio::time::Instant::now() + guard;
        let mut checked = from;
        loop {
            // Register interest before looking, so a push in between is not missed.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let p = self.lock();
                let start = checked.min(p.console.len());
                if let Some(i) = p.console[start..].iter().position(|l| pred(l)) {
                    return Some((start + i, p.console[start + i].clone()));
                }
                checked = p.console.len();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// Wait until at least one line or a failure is queued, or `timeout` passes.
    /// Returns whether something is queued.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a push in between is not missed.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let p = self.lock();
                if !p.lines.is_empty() || p.error.is_some() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return false;
            }
        }
    }
}
