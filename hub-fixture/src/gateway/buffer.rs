//! Telemetry held while a leaf's hub session is down: bounded, the oldest
//! dropped first, with a counter of what was dropped. Sans-IO.

use std::collections::VecDeque;

/// One reading waiting for the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub seq: u64,
    pub name: String,
    pub value: f64,
}

/// What [`TelemetryBuffer::push`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Held {
        held: usize,
    },
    /// Held, and this older reading was dropped to make room.
    DroppedOldest {
        dropped: Reading,
        total_dropped: u64,
    },
    /// Capacity 0: nothing is held.
    Discarded,
}

#[derive(Debug)]
pub struct TelemetryBuffer {
    capacity: usize,
    queue: VecDeque<Reading>,
    dropped: u64,
}

impl TelemetryBuffer {
    pub fn new(capacity: usize) -> Self {
        TelemetryBuffer {
            capacity,
            queue: VecDeque::with_capacity(capacity.min(4096)),
            dropped: 0,
        }
    }

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

    pub fn len(&self) -> usize {
        self.queue.len()
    }

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
    fn capacity_zero_holds_nothing() {
        let mut b = TelemetryBuffer::new(0);
        assert_eq!(b.push(r(1)), Pushed::Discarded);
        assert_eq!((b.len(), b.dropped()), (0, 1));
    }
}
