//! Persistent MQTT sessions, as IoT Hub keeps them for CleanSession=0.
//!
//! Microsoft's device SDKs connect with CleanSession=0 and do not subscribe
//! again after a reconnect: they rely on the hub to keep the session. So a
//! session's subscriptions and its unacknowledged QoS 1 deliveries (packet id
//! → C2D message) live here, in the same database as the queue, and survive
//! the connection, an eviction and a hub restart alike.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{finish, messages_where, FeedbackStatus, Res, Store, Taken};
use crate::serial::Serial;
use crate::topics::Subscription;

/// What a persistent session keeps between connections.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredSession {
    /// Granted subscriptions, in a stable order.
    pub subscriptions: Vec<Subscription>,
    /// C2D deliveries sent and not yet acknowledged, in the order sent.
    pub in_flight: Vec<InFlightC2d>,
}

/// One unacknowledged QoS 1 C2D delivery of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightC2d {
    /// The MQTT packet id of the PUBLISH; the device's PUBACK names it.
    pub packet_id: u16,
    /// The queued message's `seq`.
    pub seq: i64,
}

impl Store {
    /// The device's stored session, if it has one.
    pub fn session(&self, device_id: &str) -> Res<Option<StoredSession>> {
        let sql = "SELECT subscriptions, in_flight FROM mqtt_sessions WHERE device_id = ?1";
        let row: Option<(String, String)> = self
            .conn
            .query_row(sql, [device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((subs, flying)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredSession {
            subscriptions: serde_json::from_str(&subs)?,
            in_flight: serde_json::from_str(&flying)?,
        }))
    }

    /// Creates or replaces the device's stored session (the device must exist).
    pub fn save_session(&mut self, device_id: &str, session: &StoredSession) -> Res<()> {
        let tx = self.tx()?;
        super::require_device(&tx, device_id)?;
        tx.execute(
            "INSERT OR REPLACE INTO mqtt_sessions (device_id, subscriptions, in_flight) VALUES (?1, ?2, ?3)",
            params![
                device_id,
                serde_json::to_string(&session.subscriptions)?,
                serde_json::to_string(&session.in_flight)?
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Discards the device's stored session; true if there was one.
    pub fn drop_session(&mut self, device_id: &str) -> Res<bool> {
        let n = self.conn.execute(
            "DELETE FROM mqtt_sessions WHERE device_id = ?1",
            [device_id],
        )?;
        Ok(n > 0)
    }

    /// Takes message `seq` of `device_id` for a redelivery on a resumed
    /// session (MQTT 3.1.1 §4.4: same packet id, DUP set): if it is still
    /// pending, unexpired and under the delivery limit, its delivery count is
    /// incremented and it is returned; an expired one gets feedback `expired`,
    /// one at the limit `deliveryCountExceeded`; a message that already left
    /// the queue gives nothing.
    pub fn take_redelivery(&mut self, device_id: &str, seq: i64, now_ms: i64) -> Res<Taken> {
        let max = self.config.max_delivery_count;
        let tx = self.tx()?;
        let mut taken = Taken::default();
        let found = messages_where(&tx, "device_id = ?1 AND seq = ?2", params![device_id, seq])?;
        if let Some(mut m) = found.into_iter().next() {
            if m.expires_ms <= now_ms {
                let fb = finish(&tx, m.seq, FeedbackStatus::Expired, now_ms)?;
                taken.feedback.push(fb);
            } else if m.delivery_count >= max {
                let status = FeedbackStatus::DeliveryCountExceeded;
                taken.feedback.push(finish(&tx, m.seq, status, now_ms)?);
            } else {
                m.delivery_count += 1;
                let sql = "UPDATE messages SET delivery_count = ?2 WHERE seq = ?1";
                tx.execute(sql, params![m.seq, m.delivery_count])?;
                taken.messages.push(m);
            }
        }
        tx.commit()?;
        Ok(taken)
    }
}

/// Schema v2 migration: serials written by earlier builds in another spelling
/// (upper case, leading zero octets) become canonical, in the certificate
/// table and in the EST supersession records.
pub(super) fn canonicalise_serials(tx: &Transaction) -> Res<()> {
    let serials: Vec<String> = {
        let mut stmt = tx.prepare("SELECT serial FROM certs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for old in serials {
        if let Ok(new) = Serial::parse(&old) {
            if new != *old.as_str() {
                tx.execute(
                    "UPDATE certs SET serial = ?2 WHERE serial = ?1",
                    params![old, new.as_str()],
                )?;
            }
        }
    }
    let prefix = crate::hub_state::SUPERSEDES_PREFIX;
    let records: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT key, value FROM meta WHERE key LIKE 'supersedes:%'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (key, value) in records {
        let new_serial = key.strip_prefix(prefix).and_then(|s| Serial::parse(s).ok());
        let old_serial = Serial::parse(&value).ok();
        if let (Some(new_serial), Some(old_serial)) = (new_serial, old_serial) {
            tx.execute("DELETE FROM meta WHERE key = ?1", [&key])?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![format!("{prefix}{new_serial}"), old_serial.as_str()],
            )?;
        }
    }
    Ok(())
}
