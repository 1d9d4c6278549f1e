//! Server-side trouble, as a test switches it on: the fixture switches that
//! Microsoft's Azure IoT SDK end-to-end tests inject into IoT Hub (a reset
//! connection, a connection closed after an MQTT-level error, a CONNACK that
//! never comes, a session the hub did not keep) and the twin race IoT Hub's
//! documentation warns of (a GET response older than a patch). Each one is
//! journalled, so a case cites it.

use crate::hub::{HubConfig, HubError, HubFixture, Listeners, SessionCommand};
use crate::journal::{CloseReason, Event};

impl HubFixture {
    /// [`HubFixture::shutdown`], then waits until the listeners have
    /// stopped accepting; returns the MQTT and HTTPS listening sockets
    /// (`None` if the hub was stopped before), which [`HubFixture::start_on`]
    /// starts the restarted hub on. Dropped, they close.
    ///
    /// Why hand them over rather than bind the addresses again: a process
    /// the bench forks at that moment holds a copy of the listening socket
    /// until it execs, and a new bind then fails with EADDRINUSE (seen in
    /// CD-15 under load). A socket-activated service's restart keeps its
    /// socket the same way: connections made while the hub is down wait in
    /// the backlog until the new hub accepts them.
    pub async fn stop(&self) -> Option<Listeners> {
        self.shutdown();
        let tasks = self.listeners.lock().expect("listeners lock").take()?;
        if let Some(admin) = tasks.admin {
            let _ = admin.await;
        }
        match (tasks.mqtt.await, tasks.https.await) {
            (Ok(mqtt), Ok(https)) => Some(Listeners { mqtt, https }),
            _ => None,
        }
    }

    /// Starts a hub as [`HubFixture::start`] does, on the listening sockets
    /// of a stopped one ([`HubFixture::stop`]) instead of binding
    /// `config.mqtt_addr` and `config.https_addr`.
    pub async fn start_on(config: HubConfig, listeners: Listeners) -> Result<Self, HubError> {
        Self::start_inner(config, Some(listeners)).await
    }

    /// Resets the device's live connection: TCP RST, no TLS close, no FIN
    /// (what a load balancer or a crashed gateway node does). False when
    /// the device has no live session.
    pub fn reset_connection(&self, device_id: &str) -> bool {
        self.close_with(
            device_id,
            CloseReason::HubReset,
            "the hub reset the connection",
        )
    }

    /// Closes the device's live connection as IoT Hub does after an
    /// MQTT-level error: TLS close_notify and FIN, no MQTT packet (an MQTT
    /// 3.1.1 server has no DISCONNECT to send). False when the device has
    /// no live session.
    pub fn close_connection(&self, device_id: &str) -> bool {
        self.close_with(
            device_id,
            CloseReason::HubClosed,
            "the hub closed the connection (as after an MQTT-level error)",
        )
    }

    /// Discards the device's stored persistent session, so that its next
    /// CONNECT gets session-present 0: its live connection (if any) is
    /// closed first and the stored state dropped before the socket closes,
    /// so no reconnect can find it. Returns whether a live session was closed.
    pub fn discard_session(&self, device_id: &str) -> bool {
        let live = self.close_with(
            device_id,
            CloseReason::SessionDiscarded,
            "the hub discarded the device's session",
        );
        if !live {
            if let Err(e) = self.state.store().drop_session(device_id) {
                tracing::error!("discarding the stored session of {device_id}: {e}");
            }
        }
        live
    }

    /// While on, the hub answers no CONNECT of the device: TLS is accepted,
    /// the CONNECT read and journalled (`connack_withheld`), and the
    /// connection left open and silent until the device gives up on it.
    /// Connections already withheld stay so when it is switched off.
    pub fn set_withhold_connack(&self, device_id: &str, withhold: bool) {
        let mut set = self.state.withhold_connack.lock().expect("withhold lock");
        if withhold {
            set.insert(device_id.to_owned());
        } else {
            set.remove(device_id);
        }
    }

    /// Loses the device's next PUBACK, as when the link drops between the
    /// device's acknowledgement and the hub: the hub journals it
    /// (`puback_lost`), leaves the command uncompleted and resets the
    /// connection, so the command is delivered again on the device's next
    /// session — which must acknowledge it without applying it twice.
    pub fn lose_next_puback(&self, device_id: &str) {
        let mut set = self.state.lose_puback.lock().expect("lose-puback lock");
        set.insert(device_id.to_owned());
    }

    /// Holds the notification of the device's next desired-properties
    /// patch (`desired_held`): the twin changes, the device is told only by
    /// [`HubFixture::release_desired`], after newer patches and GETs — a
    /// notification older than the twin the device has, as IoT Hub's
    /// reconnection flow warns it may get.
    pub fn hold_next_desired(&self, device_id: &str) {
        self.state
            .held_desired
            .lock()
            .expect("held desired lock")
            .insert(device_id.to_owned(), None);
    }

    /// Sends the held notification (now stale) to the device's live
    /// session, which sends it if the device subscribed to desired patches
    /// (`desired_released` says whether). Returns its `$version`, or `None`
    /// when none is held or the device has no live session.
    pub fn release_desired(&self, device_id: &str) -> Option<i64> {
        let (version, patch) = self
            .state
            .held_desired
            .lock()
            .expect("held desired lock")
            .remove(device_id)
            .flatten()?;
        self.state
            .send_to_session(device_id, SessionCommand::HeldDesired { version, patch })
            .ok()?;
        Some(version)
    }

    /// [`HubFixture::patch_desired`]'s notification, if the switch holds it.
    pub(crate) fn hold_desired(
        &self,
        device_id: &str,
        version: i64,
        patch: &serde_json::Value,
    ) -> bool {
        let mut held = self.state.held_desired.lock().expect("held desired lock");
        let Some(slot @ None) = held.get_mut(device_id) else {
            return false;
        };
        *slot = Some((version, patch.clone()));
        drop(held);
        self.state
            .journal
            .record(Some(device_id), None, Event::DesiredHeld { version });
        true
    }

    fn close_with(&self, device_id: &str, reason: CloseReason, detail: &str) -> bool {
        self.state
            .send_to_session(
                device_id,
                SessionCommand::Close {
                    reason,
                    detail: detail.into(),
                    revoked_at: None,
                },
            )
            .is_ok()
    }
}
