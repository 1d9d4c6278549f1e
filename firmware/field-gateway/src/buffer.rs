//! Telemetry held while a leaf's hub session is down: bounded, the oldest
//! dropped first, with a counter of what was dropped. Sans-IO.

use std::collections::VecDeque;

/// One reading waiting for the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Per link, from 1: the hub sees gaps where readings were dropped.
    pub seq: u64,
    /// Its key in the telemetry body.
    pub name: String,
    /// The scaled value.
    pub value: f64,
}

/// What [`TelemetryBuffer::push`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    /// Held, with this many now held.
    Held {
        /// Readings held now.
        held: usize,
    },
    /// Held, and this older reading was dropped to make room.
    DroppedOldest {
        /// The reading dropped.
        dropped: Reading,
        /// Readings dropped since the gateway started.
        total_dropped: u64,
    },
    /// Capacity 0: nothing is held.
    Discarded,
}

/// A leaf's held readings.
#[derive(Debug)]
pub struct TelemetryBuffer {
    capacity: usize,
    queue: VecDeque<Reading>,
    dropped: u64,
}

impl TelemetryBuffer {
    /// Holds up to `capacity` readings.
    pub fn new(capacity: usize) -> Self {
        TelemetryBuffer {
            capacity,
            queue: VecDeque::with_capacity(capacity.min(4096)),
            dropped: 0,
        }
    }

    /// Holds `r`, dropping the oldest if full.
    pub fn push(&mut self, r: Reading) -> Pushed {
        if self.capacity == 0 {
            self.dropped += 1;
            return Pushed::Discarded;
        }
        let out = if self.queue.len() == self.capacity {
            self.dropped += 1;
            self.queue.pop_front().map(|dropped| Pushed::DroppedOldest {
                dropped,
                total_dropped: self.dropped,
            })
        } else {
            None
        };
        self.queue.push_back(r);
        out.unwrap_or(Pushed::Held {
            held: self.queue.len(),
        })
    }

    /// Everything held, oldest first.
    pub fn drain(&mut self) -> Vec<Reading> {
        self.queue.drain(..).collect()
    }

    /// At most `n` of the oldest held readings; the rest stay held (and
    /// bounded) until the uplink has room for them.
    pub fn take(&mut self, n: usize) -> Vec<Reading> {
        let n = n.min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    /// Readings held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Readings dropped since the gateway started.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u64) -> Reading {
        Reading {
            seq,
            name: "t".into(),
            value: seq as f64,
        }
    }

    #[test]
    fn bounded_oldest_dropped_first_and_counted() {
        let mut b = TelemetryBuffer::new(3);
        for s in 1..=3 {
            assert_eq!(b.push(r(s)), Pushed::Held { held: s as usize });
        }
        assert_eq!(
            b.push(r(4)),
            Pushed::DroppedOldest {
                dropped: r(1),
                total_dropped: 1
            }
        );
        b.push(r(5));
        assert_eq!(b.dropped(), 2);
        let seqs: Vec<u64> = b.drain().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4, 5], "the newest, in order");
        assert!(b.is_empty());
        assert_eq!(b.dropped(), 2, "the counter survives a drain");
    }

    #[test]
    fn take_hands_out_the_oldest_and_keeps_the_rest() {
        let mut b = TelemetryBuffer::new(5);
        for s in 1..=4 {
            b.push(r(s));
        }
        let seqs = |v: Vec<Reading>| v.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(b.take(3)), [1, 2, 3]);
        assert_eq!(seqs(b.take(3)), [4]);
        assert!(b.take(3).is_empty());
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let mut b = TelemetryBuffer::new(0);
        assert_eq!(b.push(r(1)), Pushed::Discarded);
        assert_eq!((b.len(), b.dropped()), (0, 1));
    }
}
