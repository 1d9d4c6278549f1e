//! Store unit tests (in-memory and on-disk SQLite).
use super::*;
use serde_json::json;
use FeedbackStatus::*;

const T0: i64 = 1_700_000_000_000;
const H: i64 = 3_600_000;
type Took = (Vec<(i64, u32)>, Vec<(i64, FeedbackStatus, u32)>);

fn store_with(config: StoreConfig) -> Store {
    let mut s = Store::open_in_memory(config).unwrap();
    s.register_device("d1", T0).unwrap();
    s
}

fn store() -> Store {
    store_with(StoreConfig::default())
}

fn msg(ttl_ms: Option<i64>) -> NewMessage {
    let payload = b"m".to_vec();
    NewMessage {
        message_id: None,
        payload,
        properties: vec![],
        ttl_ms,
    }
}

fn put(s: &mut Store, ttl_ms: Option<i64>) -> i64 {
    s.enqueue("d1", msg(ttl_ms), T0).unwrap().seq
}

/// The error's Debug text.
fn err<T>(r: Res<T>) -> String {
    r.map_or_else(|e| format!("{e:?}"), |_| "no error".into())
}

fn ser(text: &str) -> Serial {
    Serial::parse(text).unwrap()
}

fn cert(serial: &str, issued_ms: i64) -> CertRecord {
    let serial = Serial::parse(serial).unwrap();
    let (device_id, thumbprint) = ("d1".into(), "tp".into());
    let (not_before_ms, not_after_ms, revoked_ms) = (issued_ms, issued_ms + H, None);
    CertRecord {
        serial,
        device_id,
        thumbprint,
        not_before_ms,
        not_after_ms,
        issued_ms,
        revoked_ms,
    }
}

/// take_deliverable: (seq, delivery_count) taken, (seq, status, delivery_count) feedback.
fn take(s: &mut Store, now: i64, in_flight: &[i64], limit: usize) -> Took {
    let t = s.take_deliverable("d1", now, in_flight, limit).unwrap();
    let fb = t
        .feedback
        .iter()
        .map(|f| (f.seq, f.status, f.delivery_count));
    let taken = t.messages.iter().map(|m| (m.seq, m.delivery_count));
    (taken.collect(), fb.collect())
}

fn pending(s: &Store) -> Vec<(i64, u32)> {
    let p = s.pending("d1").unwrap();
    p.iter().map(|m| (m.seq, m.delivery_count)).collect()
}

#[test]
fn round_trip_in_order_with_feedback() {
    let mut s = store();
    assert_eq!(err(s.register_device("d1", T0)), r#"DeviceExists("d1")"#);
    assert_eq!(err(s.enqueue("x", msg(None), T0)), r#"UnknownDevice("x")"#);
    s.set_device_status("d1", DeviceStatus::Disabled).unwrap(); // still gets C2D
    let a = s.enqueue("d1", msg(None), T0).unwrap();
    let props = vec![("k".to_string(), "v".to_string())];
    let (id, properties) = (Some("mid-b".to_string()), props.clone());
    let m = NewMessage {
        message_id: id,
        properties,
        ..msg(None)
    };
    let (b, c) = (s.enqueue("d1", m, T0).unwrap().seq, put(&mut s, None));
    assert!(a.message_id.len() == 32 && a.message_id.chars().all(|ch| ch.is_ascii_hexdigit()));
    assert!(a.seq < b && b < c);
    let t = s.take_deliverable("d1", T0 + 10, &[], 2).unwrap();
    let (m0, m1) = (&t.messages[0], &t.messages[1]);
    assert_eq!((&m0.message_id, &m0.payload), (&a.message_id, &a.payload));
    assert_eq!((&*m1.message_id, &m1.properties), ("mid-b", &props));
    assert_eq!((m0.seq, m1.seq, t.messages.len()), (a.seq, b, 2));
    assert_eq!((m0.delivery_count, m1.delivery_count), (1, 1));
    let got = take(&mut s, T0 + 10, &[a.seq, b], 10);
    assert_eq!(got, (vec![(c, 1)], vec![]));
    let fb = s.complete(a.seq, T0 + 20).unwrap().unwrap();
    assert_eq!((fb.status, fb.seq, fb.at_ms), (Success, a.seq, T0 + 20));
    assert_eq!((fb.delivery_count, &fb.message_id), (1, &a.message_id));
    assert_eq!(fb.device_id, "d1");
    assert_eq!(pending(&s), [(b, 1), (c, 1)]);
    assert_eq!(s.pending_count("d1").unwrap(), 2);
    // Taken but not completed: taken again in the next session.
    let got = take(&mut s, T0 + 30, &[], 9);
    assert_eq!(got, (vec![(b, 2), (c, 2)], vec![]));
    assert_eq!(s.feedback(Some("d1")).unwrap(), std::slice::from_ref(&fb));
    assert_eq!(s.feedback(None).unwrap(), [fb]);
    assert!(s.feedback(Some("other")).unwrap().is_empty());
    let json = serde_json::to_value(DeliveryCountExceeded).unwrap();
    assert_eq!(json, DeliveryCountExceeded.as_str());
}

#[test]
fn queue_depth_limit() {
    let mut s = store();
    let first = put(&mut s, None);
    for _ in 1..50 {
        put(&mut s, None);
    }
    let full = err(s.enqueue("d1", msg(None), T0));
    assert_eq!(full, r#"QueueFull { device_id: "d1", depth: 50 }"#);
    assert_eq!(s.pending_count("d1").unwrap(), 50);
    take(&mut s, T0, &[], 1);
    s.complete(first, T0).unwrap().unwrap();
    put(&mut s, None);
    assert_eq!(s.pending_count("d1").unwrap(), 50);
}

#[test]
fn ttl_rules_and_expiry() {
    let mut s = store();
    let short = s.enqueue("d1", msg(None), T0).unwrap();
    assert_eq!(short.expires_ms, T0 + H);
    let too_long = err(s.enqueue("d1", msg(Some(49 * H)), T0));
    let want = "TtlTooLong { requested_ms: 176400000, max_ms: 172800000 }"; // 49 h, 48 h
    assert_eq!(too_long, want);
    assert_eq!(err(s.enqueue("d1", msg(Some(0)), T0)), "InvalidTtl(0)");
    let long = s.enqueue("d1", msg(Some(48 * H)), T0).unwrap();
    assert_eq!(long.expires_ms, T0 + 48 * H);
    let (short, long) = (short.seq, long.seq);
    let got = take(&mut s, T0 + 2 * H, &[], 10);
    assert_eq!(got, (vec![(long, 1)], vec![(short, Expired, 0)]));
    let got = take(&mut s, T0 + 47 * H, &[], 10);
    assert_eq!(got, (vec![(long, 2)], vec![]));
    assert!(s.expire_due(T0 + 48 * H - 1).unwrap().is_empty());
    let fb = s.expire_due(T0 + 48 * H).unwrap();
    let fb: Vec<_> = fb
        .iter()
        .map(|f| (f.seq, f.status, f.delivery_count))
        .collect();
    assert_eq!(fb, [(long, Expired, 2)]);
    assert!(pending(&s).is_empty());
    assert_eq!(s.complete(long, T0 + 48 * H).unwrap(), None);
}

#[test]
fn dead_letter_after_max_deliveries() {
    let mut s = store();
    let m = put(&mut s, None);
    for i in 1..=10 {
        assert_eq!(take(&mut s, T0 + i, &[], 9), (vec![(m, i as u32)], vec![]));
    }
    let got = take(&mut s, T0 + 11, &[], 10);
    assert_eq!(got, (vec![], vec![(m, DeliveryCountExceeded, 10)]));
    assert!(pending(&s).is_empty());
    assert_eq!(s.complete(m, T0 + 12).unwrap(), None);
}

#[test]
fn in_flight_messages_are_skipped_not_dead_lettered() {
    let mut s = store_with(StoreConfig {
        max_delivery_count: 2,
        ..Default::default()
    });
    let a = put(&mut s, None);
    take(&mut s, T0, &[], 1);
    assert_eq!(take(&mut s, T0, &[], 1), (vec![(a, 2)], vec![]));
    let b = put(&mut s, None);
    // a is at the maximum but in flight: neither taken again nor dead-lettered.
    assert_eq!(take(&mut s, T0, &[a], 10), (vec![(b, 1)], vec![]));
    assert_eq!(take(&mut s, T0, &[a, b], 10), (vec![], vec![]));
    assert_eq!(pending(&s), [(a, 2), (b, 1)]);
    let fb = s.complete(a, T0).unwrap().unwrap();
    assert_eq!((fb.status, fb.delivery_count), (Success, 2));
    // Out of flight (connection lost), it is dead-lettered.
    assert_eq!(take(&mut s, T0, &[], 10), (vec![(b, 2)], vec![]));
    let got = take(&mut s, T0, &[], 10);
    assert_eq!(got, (vec![], vec![(b, DeliveryCountExceeded, 2)]));
}

#[test]
fn survives_reopen_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let mut s = Store::open(&path, StoreConfig::default()).unwrap();
    let pragma = |s: &Store, p: &str| {
        let v = s.conn.pragma_query_value(None, p, |r| r.get(0));
        v.map(|v: rusqlite::types::Value| format!("{v:?}")).unwrap()
    };
    assert_eq!(pragma(&s, "journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma(&s, "synchronous"), "Integer(2)"); // FULL
    s.register_device("d1", T0).unwrap();
    s.register_device("d2", T0 + 1).unwrap();
    s.set_device_status("d2", DeviceStatus::Disabled).unwrap();
    s.add_certificate(&cert("0a1b", T0)).unwrap();
    s.add_certificate(&cert("0c2d", T0 + 5)).unwrap();
    s.revoke_certificate(&ser("0a1b"), T0 + 6).unwrap();
    s.patch_desired("d1", &json!({"fw": {"v": "1.2"}})).unwrap();
    s.patch_reported("d1", &json!({"uptime": 5})).unwrap();
    let (a, b) = (put(&mut s, None), put(&mut s, Some(48 * H)));
    take(&mut s, T0, &[], 1);
    s.set_meta("clock_offset_ms", "41").unwrap();
    s.set_meta("clock_offset_ms", "42").unwrap();
    let (devices, twin) = (s.devices().unwrap(), s.twin("d1").unwrap());
    let certs = s.certificates_of("d1").unwrap();
    // Simulate kill -9: no destructor, no close, no checkpoint.
    std::mem::forget(s);

    let mut s = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(s.devices().unwrap(), devices);
    assert_eq!(devices[1].status, DeviceStatus::Disabled);
    assert_eq!(s.certificates_of("d1").unwrap(), certs);
    assert_eq!((&*certs[0].serial, &*certs[1].serial), ("0a1b", "0c2d"));
    assert_eq!(certs[0].revoked_ms, Some(T0 + 6));
    assert_eq!(s.twin("d1").unwrap(), twin);
    assert_eq!((twin.desired_version, twin.reported_version), (2, 2));
    assert_eq!(twin.desired, json!({"fw": {"v": "1.2"}}));
    assert_eq!(pending(&s), [(a, 1), (b, 0)]);
    assert_eq!(s.pending("d1").unwrap()[1].expires_ms, T0 + 48 * H);
    assert_eq!(s.meta("clock_offset_ms").unwrap().as_deref(), Some("42"));
    assert_eq!(s.meta("nope").unwrap(), None);
    assert_eq!(take(&mut s, T0, &[], 1).0, [(a, 2)]);
    assert!(put(&mut s, None) > b, "seq continues after the old ones");
}

#[test]
fn schema_newer_than_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let opened = Store::open(&path, StoreConfig::default());
    assert_eq!(err(opened), format!("SchemaTooNew({})", SCHEMA_VERSION + 1));
}

#[test]
fn duplicate_ack_reject_and_delete_device() {
    let mut s = store();
    let a = put(&mut s, None);
    take(&mut s, T0, &[], 10);
    assert!(s.complete(a, T0 + 1).unwrap().is_some());
    assert_eq!(s.complete(a, T0 + 2).unwrap(), None);
    assert_eq!(err(s.complete(9999, T0)), "UnknownMessage(9999)");
    let r = put(&mut s, None);
    let fb = s.reject(r, T0 + 3).unwrap();
    assert_eq!(fb.map(|f| f.status), Some(Rejected));
    assert_eq!(s.reject(r, T0 + 4).unwrap(), None);

    s.add_certificate(&cert("AB01", T0)).unwrap();
    let ghost = CertRecord {
        device_id: "gh".into(),
        ..cert("cd02", T0)
    };
    assert_eq!(err(s.add_certificate(&ghost)), r#"UnknownDevice("gh")"#);
    let (b, c) = (put(&mut s, None), put(&mut s, None));
    let fb = s.delete_device("d1", T0 + 100).unwrap();
    let fb: Vec<_> = fb.iter().map(|f| (f.seq, f.status, f.at_ms)).collect();
    assert_eq!(fb, [(b, Rejected, T0 + 100), (c, Rejected, T0 + 100)]);
    assert_eq!(s.device("d1").unwrap(), None);
    assert_eq!(err(s.twin("d1")), r#"UnknownDevice("d1")"#);
    assert_eq!(err(s.enqueue("d1", msg(None), T0)), err(s.twin("d1")));
    assert_eq!(err(s.delete_device("d1", T0)), r#"UnknownDevice("d1")"#);
    assert_eq!(s.pending_count("d1").unwrap(), 0);
    let cert = s.certificate(&ser("ab01")).unwrap().unwrap();
    assert_eq!((&*cert.serial, cert.revoked_ms), ("ab01", Some(T0 + 100)));
    assert_eq!(s.certificates_of("d1").unwrap(), [cert]);
    assert_eq!(s.revoked_serials().unwrap(), ["ab01"]);
    assert_eq!(s.feedback(Some("d1")).unwrap().len(), 4); // kept
    s.register_device("d1", T0 + 200).unwrap();
    assert_eq!(s.twin("d1").unwrap().desired, json!({}));
}

#[test]
fn twin_merge_patch() {
    let mut s = store();
    let t = s.twin("d1").unwrap();
    // IoT Hub: a new twin's sections are at $version 1.
    assert_eq!((&t.desired, t.desired_version), (&json!({}), 1));
    assert_eq!((&t.reported, t.reported_version), (&json!({}), 1));
    let patch = json!({"a": {"b": 1, "c": 2}, "d": 1, "n": {"x": null}});
    let t = s.patch_desired("d1", &patch).unwrap();
    let want = json!({"a": {"b": 1, "c": 2}, "d": 1, "n": {}});
    assert_eq!((t.desired, t.desired_version), (want, 2));
    let patch = json!({"a": {"b": null, "e": [1, 2]}, "d": null, "n": 5});
    let t = s.patch_desired("d1", &patch).unwrap();
    let want = json!({"a": {"c": 2, "e": [1, 2]}, "n": 5});
    assert_eq!((&t.desired, t.desired_version), (&want, 3));
    let t = s.patch_reported("d1", &json!({"fw": "1.0"})).unwrap();
    let fw = json!({"fw": "1.0"});
    assert_eq!((&t.reported, t.reported_version), (&fw, 2));
    assert_eq!((&t.desired, t.desired_version), (&want, 3));
    assert_eq!(s.twin("d1").unwrap(), t);
    assert_eq!(err(s.patch_desired("d1", &json!([1]))), "NotAnObject");
    let unknown = err(s.patch_reported("zz", &json!({})));
    assert_eq!(unknown, r#"UnknownDevice("zz")"#);
    assert_eq!(s.twin("d1").unwrap(), t);
}

#[test]
fn revoke_keeps_first_time() {
    let mut s = store();
    s.add_certificate(&cert("01ff", T0)).unwrap();
    assert!(s.revoked_serials().unwrap().is_empty());
    let r = s.revoke_certificate(&ser("01ff"), T0 + 100).unwrap();
    assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
    let r = s.revoke_certificate(&ser("01FF"), T0 + 200).unwrap();
    assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
    let r = s.certificate(&ser("01ff")).unwrap();
    assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
    assert_eq!(s.revoke_certificate(&ser("beef"), T0).unwrap(), None);
    assert_eq!(s.revoked_serials().unwrap(), ["01ff"]);
}

/// A data directory written by a version-1 build, with serials in other
/// spellings, opens with every serial canonical (so revocation by any
/// spelling finds it) and with the session table.
#[test]
fn a_version_1_store_is_migrated_to_canonical_serials_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO devices VALUES ('d1', 'enabled', 0);
             INSERT INTO twins VALUES ('d1', '{}', 1, '{}', 1);
             INSERT INTO certs VALUES ('00AB01', 'd1', 'tp', 0, 1, 0, 5);
             INSERT INTO certs VALUES ('0C2D', 'd1', 'tp', 0, 1, 0, NULL);
             INSERT INTO meta VALUES ('supersedes:0C2D', '00AB01');",
        )
        .unwrap();
    }
    let mut s = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(s.revoked_serials().unwrap(), ["ab01"]);
    assert!(s.certificate(&ser("0c:2d")).unwrap().is_some());
    assert_eq!(s.meta("supersedes:0c2d").unwrap().as_deref(), Some("ab01"));
    assert_eq!(s.meta("supersedes:0C2D").unwrap(), None);
    s.save_session("d1", &StoredSession::default()).unwrap();
    assert!(s.session("d1").unwrap().is_some());
}

#[test]
fn stored_sessions_survive_reopening_and_go_with_their_device() {
    use crate::topics::Subscription;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let mut s = Store::open(&path, StoreConfig::default()).unwrap();
    s.register_device("d1", T0).unwrap();
    assert_eq!(s.session("d1").unwrap(), None);
    let session = StoredSession {
        subscriptions: vec![Subscription::CloudToDevice, Subscription::TwinDesired],
        in_flight: vec![InFlightC2d {
            packet_id: 9,
            seq: 4,
        }],
    };
    s.save_session("d1", &session).unwrap();
    assert_eq!(
        err(s.save_session("zz", &session)),
        r#"UnknownDevice("zz")"#
    );
    std::mem::forget(s); // kill -9
    let mut s = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(s.session("d1").unwrap(), Some(session));
    assert!(s.drop_session("d1").unwrap());
    assert!(!s.drop_session("d1").unwrap());
    s.save_session("d1", &StoredSession::default()).unwrap();
    s.delete_device("d1", T0).unwrap();
    assert_eq!(s.session("d1").unwrap(), None);
}

#[test]
fn a_redelivery_counts_and_respects_expiry_and_the_delivery_limit() {
    let config = StoreConfig {
        max_delivery_count: 2,
        ..StoreConfig::default()
    };
    let mut s = Store::open_in_memory(config).unwrap();
    s.register_device("d1", T0).unwrap();
    let a = put(&mut s, None);
    let b = put(&mut s, Some(10));
    take(&mut s, T0, &[], 2);
    let t = s.take_redelivery("d1", a, T0 + 1).unwrap();
    assert_eq!(
        t.messages
            .iter()
            .map(|m| (m.seq, m.delivery_count))
            .collect::<Vec<_>>(),
        [(a, 2)]
    );
    let t = s.take_redelivery("d1", a, T0 + 2).unwrap();
    assert!(t.messages.is_empty());
    assert_eq!(t.feedback[0].status, DeliveryCountExceeded);
    let t = s.take_redelivery("d1", b, T0 + 20).unwrap();
    assert!(t.messages.is_empty());
    assert_eq!(t.feedback[0].status, Expired);
    let t = s.take_redelivery("d1", a, T0 + 30).unwrap();
    assert_eq!(t, Taken::default(), "gone from the queue");
    assert_eq!(s.take_redelivery("d2", a, T0).unwrap(), Taken::default());
}

/// IoT Hub's limits: 64 KB per C2D message with its properties, 32 KB per
/// twin section; refused whole, nothing stored.
#[test]
fn iot_hub_size_limits_on_c2d_messages_and_twin_sections() {
    let mut s = store();
    let at_limit = |extra: usize| NewMessage {
        message_id: Some("m".repeat(16)),
        payload: vec![b'x'; MAX_C2D_MESSAGE - 16 - 2 + extra],
        properties: vec![("k".into(), "v".into())],
        ttl_ms: None,
    };
    s.enqueue("d1", at_limit(0), T0).unwrap();
    let e = err(s.enqueue("d1", at_limit(1), T0));
    assert_eq!(e, "MessageTooLarge { size: 65537, max: 65536 }");
    assert_eq!(s.pending_count("d1").unwrap(), 1);

    let big = |n: usize| json!({ "blob": "y".repeat(n) });
    let fits = MAX_TWIN_SECTION - big(0).to_string().len();
    s.patch_reported("d1", &big(fits)).unwrap();
    let e = err(s.patch_reported("d1", &big(fits + 1)));
    assert!(e.starts_with("TwinTooLarge { section: \"reported\""), "{e}");
    // A patch that fits but would grow the section past the limit.
    let e = err(s.patch_reported("d1", &json!({ "more": 1 })));
    assert!(e.starts_with("TwinTooLarge"), "{e}");
    assert_eq!(
        s.twin("d1").unwrap().reported_version,
        2,
        "refusals change nothing"
    );
    let e = err(s.patch_desired("d1", &big(MAX_TWIN_SECTION)));
    assert!(e.starts_with("TwinTooLarge { section: \"desired\""), "{e}");
}
