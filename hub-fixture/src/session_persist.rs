//! The persistent session (CleanSession=0) of [`Session`]: taking up the
//! stored state at CONNECT and writing it through as it changes.

use super::{HubPort, Session, State};
use crate::journal::Event;
use crate::store::{InFlightC2d, StoredSession};

impl Session {
    /// Takes up a stored session: its subscriptions hold again, and its
    /// unacknowledged C2D deliveries are sent again with their packet ids and
    /// DUP set (MQTT 3.1.1 §4.4), before any new message.
    pub(super) fn resume(&mut self, port: &mut dyn HubPort, stored: StoredSession) {
        let id = self.identity.device_id.clone();
        self.subscriptions = stored.subscriptions.iter().copied().collect();
        port.journal(
            &id,
            Event::SessionResumed {
                subscriptions: stored.subscriptions.clone(),
                in_flight: stored.in_flight.len(),
            },
        );
        let mut flying = stored.in_flight;
        flying.sort_by_key(|f| f.seq);
        for f in flying {
            if let Some(m) = port.take_redelivery(&id, f.seq) {
                self.send_c2d(port, m, f.packet_id);
            }
        }
        self.persist(port);
        self.deliver_c2d(port);
    }

    /// Writes the session's state through to the store (CleanSession=0 only).
    pub(super) fn persist(&mut self, port: &mut dyn HubPort) {
        if !self.persistent || self.state != State::Connected {
            return;
        }
        let mut in_flight: Vec<InFlightC2d> = self
            .in_flight
            .iter()
            .map(|(&packet_id, f)| InFlightC2d {
                packet_id,
                seq: f.seq,
            })
            .collect();
        in_flight.sort_by_key(|f| f.seq);
        let stored = StoredSession {
            subscriptions: self.subscriptions.iter().copied().collect(),
            in_flight,
        };
        port.save_session(&self.identity.device_id, &stored);
    }
}
