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

/// A clock that runs `rate` times as fast as real time, equal to it at
/// `origin_ms`: `origin + (real − origin) × rate`. The hub's clock and a
/// time-scaled device's clock (its `device.json` `clock`) use the same one,
/// so both see the same time at every instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeScale {
    /// Unix ms at which the scaled time equals real time.
    pub origin_ms: u64,
    /// How many times as fast as real time it runs (≥ 1).
    pub rate: u32,
}

impl TimeScale {
    /// The scaled time at real time `real`.
    pub fn at(&self, real: SystemTime) -> SystemTime {
        let origin = UNIX_EPOCH + Duration::from_millis(self.origin_ms);
        match real.duration_since(origin) {
            Ok(d) => origin + d * self.rate.max(1),
            // Before the origin: real time (the scale starts there).
            Err(_) => real,
        }
    }

    /// The real time a span of `scaled` time takes.
    pub fn real(&self, scaled: Duration) -> Duration {
        scaled / self.rate.max(1)
    }

    /// The scaled time a span of `real` time takes.
    pub fn scaled(&self, real: Duration) -> Duration {
        real * self.rate.max(1)
    }
}

/// Real time (or a [`TimeScale`] of it) plus an offset that only ever grows.
///
/// Starts equal to the system clock (or its scale). [`VirtualClock::advance`] moves it
/// forward; it never goes back, so "expired" stays expired. Observers can
/// [`subscribe`](VirtualClock::subscribe) to learn of jumps (the hub sweeps
/// expired messages on every jump).
#[derive(Debug)]
pub struct VirtualClock {
    offset: Mutex<Duration>,
    scale: Option<TimeScale>,
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
            scale: None,
            jumps,
        }
    }

    /// This clock running at `scale` (plus its offset).
    pub fn scaled(self, scale: TimeScale) -> Self {
        Self {
            scale: Some(scale),
            ..self
        }
    }

    /// The time scale it runs at, if not real time.
    pub fn scale(&self) -> Option<TimeScale> {
        self.scale
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
        let real = SystemTime::now();
        self.scale.map_or(real, |s| s.at(real)) + self.offset()
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
    fn a_scaled_clock_runs_rate_times_as_fast_from_its_origin() {
        let origin = SystemTime::now() - Duration::from_secs(10);
        let origin_ms = system_time_to_ms(origin) as u64;
        let scale = TimeScale {
            origin_ms,
            rate: 60,
        };
        let real = ms_to_system_time(origin_ms as i64) + Duration::from_secs(10);
        let at = scale.at(real);
        assert_eq!(at.duration_since(real).unwrap(), Duration::from_secs(590));
        assert_eq!(scale.real(Duration::from_secs(60)), Duration::from_secs(1));
        let clock = VirtualClock::default().scaled(scale);
        let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
        assert!(ahead >= Duration::from_secs(589), "{ahead:?}");
        // Before the origin it is real time.
        assert_eq!(scale.at(UNIX_EPOCH), UNIX_EPOCH);
    }

    #[test]
    fn ms_round_trip_including_before_epoch() {
        for ms in [-86_400_000i64, -1, 0, 1, 1_764_000_000_000] {
            assert_eq!(system_time_to_ms(ms_to_system_time(ms)), ms);
        }
    }
}
