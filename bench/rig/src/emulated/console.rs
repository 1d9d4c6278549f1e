//! What the emulated rigs share about their boards' processes: the console
//! (stdout and stderr lines, kept for `Rig::logs` and for waiting on) and the process
//! group that is the board's power.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::{LogLine, LogSource};

/// Lines not yet taken by `logs()`, and every line ever (for waiting on).
type Lines = (Vec<LogLine>, Vec<String>);

/// The console lines of the processes it follows, a wake-up for waiters,
/// and how many pipes are still being read (for [`ConsoleLog::drained`]).
#[derive(Clone, Default)]
pub(crate) struct ConsoleLog(
    Arc<(Mutex<Lines>, tokio::sync::Notify)>,
    Arc<(Mutex<usize>, std::sync::Condvar)>,
);

impl ConsoleLog {
    /// Reads `child`'s piped stdout and stderr into the log on threads, to
    /// their end (a board's console is both).
    pub(crate) fn follow(&self, child: &mut Child) {
        if let Some(out) = child.stdout.take() {
            self.follow_reader(out);
        }
        if let Some(err) = child.stderr.take() {
            self.follow_reader(err);
        }
    }

    fn follow_reader(&self, reader: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        *self.1 .0.lock().expect("readers lock") += 1;
        std::thread::spawn(move || {
            for text in BufReader::new(reader).lines().map_while(Result::ok) {
                me.push(LogSource::Console, text);
            }
            *me.1 .0.lock().expect("readers lock") -= 1;
            me.1 .1.notify_all();
        });
    }

    /// Waits until every pipe followed so far reached its end (all their
    /// writers are gone), at most `limit`: after a power cut, every line the
    /// board wrote before it has then been read. `false` if a pipe is still
    /// open (a process outside the board's group holds it).
    pub(crate) fn drained(&self, limit: Duration) -> bool {
        let g = self.1 .0.lock().expect("readers lock");
        let (g, _) = self
            .1
             .1
            .wait_timeout_while(g, limit, |n| *n > 0)
            .expect("readers lock");
        *g == 0
    }

    /// A line of the rig's own (a reset it saw, a power action), kept with
    /// the console's in time order but never matched as console output.
    pub(crate) fn note(&self, text: String) {
        self.push(LogSource::Rig, text);
    }

    fn push(&self, source: LogSource, text: String) {
        let at_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut g = self.0 .0.lock().expect("console lock");
        if source == LogSource::Console {
            g.1.push(text.clone());
        }
        g.0.push(LogLine {
            source,
            at_ns,
            text,
        });
        drop(g);
        self.0 .1.notify_waiters();
    }

    /// Lines read from elsewhere (RTT), stamped already; kept with the
    /// console's in `logs()`, never matched as console output.
    pub(crate) fn push_other(&self, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        self.0 .0.lock().expect("console lock").0.extend(lines);
        self.0 .1.notify_waiters();
    }

    /// The lines since the last call.
    pub(crate) fn take_new(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.0 .0.lock().expect("console lock").0)
    }

    /// Every line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0 .0.lock().expect("console lock").1.clone()
    }

    /// Waits for a line matching `pred` among those from index `from` of
    /// [`ConsoleLog::lines`] on; the line and its index, or `None` within `guard`.
    pub(crate) async fn wait_from(
        &self,
        from: usize,
        guard: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let deadline = tokio::time::Instant::now() + guard;
        let mut checked = from;
        loop {
            let notified = self.0 .1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let g = self.0 .0.lock().expect("console lock");
                let start = checked.min(g.1.len());
                if let Some(i) = g.1[start..].iter().position(|l| pred(l)) {
                    return Some((start + i, g.1[start + i].clone()));
                }
                checked = g.1.len();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// A board's process group (the process was started with `process_group(0)`):
/// dropping it is a power cut — the whole group killed at once, then reaped.
pub(crate) struct ProcessGroup(pub(crate) Child);

impl ProcessGroup {
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}
