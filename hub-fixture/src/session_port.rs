//! The session's view of the hub ([`HubPort`]): what a sans-IO session asks
//! of the registry, the queue, the journal and the fixture switches.

use bytes::Bytes;

use crate::journal::Event;
use crate::serial::Serial;
use crate::store::{DeviceStatus, QueuedMessage, StoredSession, Twin};

/// What a session needs from the hub. The IO shell implements it on the real
/// hub; unit tests implement it with a fake.
pub trait HubPort {
    /// The device's registry status; `None` if it is not registered (CONNECT
    /// is then refused as not authorised).
    fn device_status(&mut self, device_id: &str) -> Option<DeviceStatus>;
    /// Whether the certificate with this serial has been revoked.
    fn serial_revoked(&mut self, serial: &Serial) -> bool;
    /// Next C2D messages to deliver (delivery count already incremented and persisted).
    fn take_c2d(&mut self, device_id: &str, in_flight: &[i64], limit: usize) -> Vec<QueuedMessage>;
    /// The device acknowledged C2D message `seq`.
    fn complete_c2d(&mut self, device_id: &str, seq: i64);
    /// The device's twin (desired and reported, with versions), for a twin GET;
    /// `None` answers it with 404.
    fn twin(&mut self, device_id: &str) -> Option<Twin>;
    /// Applies a reported-properties patch; returns the new reported version,
    /// or the status and reason of the refusal (413 over IoT Hub's size limit).
    fn patch_reported(
        &mut self,
        device_id: &str,
        patch: &serde_json::Value,
    ) -> Result<i64, (u16, String)>;
    /// The device answered the direct method call with request id `rid`:
    /// `status` and `payload` as it published them.
    fn method_result(&mut self, device_id: &str, rid: &str, status: u16, payload: Bytes);
    /// Records `event` in the hub's journal for this device (and connection).
    fn journal(&mut self, device_id: &str, event: Event);
    /// Makes this session the device's live session (the one revocation,
    /// commands and methods reach), at once, before it is accepted: false if
    /// the certificate `serial` is revoked — checked after the session is
    /// registered, so a revocation is either seen here or finds the session.
    fn go_live(&mut self, device_id: &str, serial: &Serial) -> bool;
    /// The device's stored persistent session (CleanSession=0), if any.
    fn load_session(&mut self, device_id: &str) -> Option<StoredSession>;
    /// Stores this session's state for the device — only while this
    /// connection is the device's live session, so an evicted connection
    /// cannot overwrite its successor's state.
    fn save_session(&mut self, device_id: &str, session: &StoredSession);
    /// Discards the device's stored session (CleanSession=1).
    fn drop_session(&mut self, device_id: &str);
    /// Takes C2D message `seq` again for a resumed session's redelivery
    /// (delivery count incremented); `None` if it left the queue meanwhile.
    fn take_redelivery(&mut self, device_id: &str, seq: i64) -> Option<QueuedMessage>;
    /// Whether the hub withholds the CONNACK of this device's CONNECTs (a
    /// fixture switch): the session then never answers.
    fn withhold_connack(&mut self, _device_id: &str) -> bool {
        false
    }
    /// Whether the hub loses this PUBACK of the device (a fixture switch,
    /// armed for one PUBACK: taking it disarms it).
    fn take_lost_puback(&mut self, _device_id: &str) -> bool {
        false
    }
}
