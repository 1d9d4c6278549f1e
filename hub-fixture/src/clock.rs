//! The hub's notion of time.
//!
//! Every expiry decision in the hub (C2D TTLs, certificate validity during the
//! TLS handshake, journal time stamps) reads a [`Clock`], so that suites can
//! test a 48-hour TTL in milliseconds by advancing a [`VirtualClock`] instead of
//! sleeping. Durations that protect the hub itself (handshake timeouts, method
//! timeouts) stay on tokio's monotonic time: they guard real sockets.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::UnixTime;
use tokio::sync::watch;

/// A source of wall-clock time.
pub trait Clock: Debug + Send + Sync {
    /// The current time as the hub sees it.
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch; the unit the store persists.
    fn now_ms(&self) -> i64 {
        system_time_to_ms(self.now())
    }
}

/// Converts a [`SystemTime`] to milliseconds since the Unix epoch (negative before it).
pub fn system_time_to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Converts milliseconds since the Unix epoch back to a [`SystemTime`].
pub fn ms_to_system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Real time plus an offset that only ever grows.
///
/// Starts equal to the system clock. [`VirtualClock::advance`] moves it
/// forward; it never goes back, so "expired" stays expired. Observers can
/// [`subscribe`](VirtualClock::subscribe) to learn of jumps (the hub sweeps
/// expired messages on every jump).
#[derive(Debug)]
pub struct VirtualClock {
    offset: Mutex<Duration>,
    jumps: watch::Sender<Duration>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::with_offset(Duration::ZERO)
    }
}

impl VirtualClock {
    /// A clock that is `offset` ahead of the system clock.
    pub fn with_offset(offset: Duration) -> Self {
        let (jumps, _) = watch::channel(offset);
        Self {
            offset: Mutex::new(offset),
            jumps,
        }
    }

    /// Moves the clock forward by `by`, and returns the new offset from real time.
    pub fn advance(&self, by: Duration) -> Duration {
        let mut offset = self.offset.lock().expect("clock lock poisoned");
        *offset += by;
        let now = *offset;
        drop(offset);
        self.jumps.send_replace(now);
        now
    }

    /// How far ahead of the system clock this clock runs.
    pub fn offset(&self) -> Duration {
        *self.offset.lock().expect("clock lock poisoned")
    }

    /// A receiver that changes every time the clock is advanced.
    pub fn subscribe(&self) -> watch::Receiver<Duration> {
        self.jumps.subscribe()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }
}

/// rustls asks this for "now" when it checks certificate validity, so a
/// device certificate expires on the virtual clock like everything else.
impl rustls::time_provider::TimeProvider for VirtualClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(
            self.now().duration_since(UNIX_EPOCH).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward_and_notifies() {
        let clock = VirtualClock::default();
        let mut rx = clock.subscribe();
        let before = clock.now();
        clock.advance(Duration::from_secs(2 * 3600));
        let after = clock.now();
        assert!(after.duration_since(before).unwrap() >= Duration::from_secs(2 * 3600));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Duration::from_secs(7200));
    }

    #[test]
    fn ms_round_trip_including_before_epoch() {
        for ms in [-86_400_000i64, -1, 0, 1, 1_764_000_000_000] {
            assert_eq!(system_time_to_ms(ms_to_system_time(ms)), ms);
        }
    }
}
