//! The hostile-input battery, MQTT inputs a session survives and a slow
//! CONNECT: twin and method misuse gets IoT Hub's answer (or is ignored)
//! with mallory's session still up, and a CONNECT dribbled one byte at a
//! time is cut at the CONNECT deadline. The good device is served after
//! each; RSS stays bounded. (hostile_mqtt.rs has the inputs that end a
//! session.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;
mod hostile;

use std::time::{Duration, Instant};

use common::GUARD;
use hostile::*;
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::journal::{CloseReason, Event};
use rumqttc::mqttbytes::v4::{
    Packet, PubAck, Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::QoS;
use serde_json::json;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Publishes telemetry at QoS 1 and gets the PUBACK: the session is up.
async fn alive(c: &mut DeviceClient, after: &str) {
    tokio::time::timeout(
        GUARD,
        c.publish("devices/mallory/messages/events/", QoS::AtLeastOnce, b"up"),
    )
    .await
    .unwrap_or_else(|_| panic!("after {after}: no PUBACK"))
    .unwrap_or_else(|e| panic!("after {after}: mallory's session is down: {e}"));
}

/// Twin and method misuse IoT Hub answers (or ignores) without closing
/// the session: the answer is checked, then that the session is still up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_and_method_misuse_is_answered_and_the_session_stays_up() {
    let bench = Bench::start(|_| {}).await;
    let hub = &bench.hub;
    let (mut m, _) =
        DeviceClient::connect(hub.mqtt_addr(), &bench.mallory, ConnectOptions::default())
            .await
            .unwrap();
    m.subscribe(&["$iothub/twin/res/#"]).await.unwrap();
    let twin_before = hub.twin(MALLORY).unwrap();
    let big = json!({ "blob": "x".repeat(40 * 1024) }).to_string();
    // IoT Hub's twin section limit is 32 KB: 413 on the twin topic.
    for (name, rid, payload, status, says) in [
        (
            "a 40 KB reported patch",
            "big",
            big.as_bytes(),
            413,
            "32768",
        ),
        (
            "a reported patch that is not JSON",
            "nj",
            &b"{not json"[..],
            400,
            "key must be a string",
        ),
        (
            "a reported patch that is a JSON array",
            "arr",
            &b"[1,2,3]"[..],
            400,
            "JSON object",
        ),
        (
            "a reported patch that is a JSON string",
            "str",
            &b"\"x\""[..],
            400,
            "JSON object",
        ),
    ] {
        m.publish(
            &format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
            QoS::AtMostOnce,
            payload,
        )
        .await
        .unwrap();
        let p = m.next_publish(GUARD).await.unwrap();
        assert_eq!(
            p.topic,
            format!("$iothub/twin/res/{status}/?$rid={rid}"),
            "{name}"
        );
        let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{name}: {body}"
        );
        alive(&mut m, name).await;
        bench.still_served(name).await;
    }
    assert_eq!(hub.twin(MALLORY).unwrap().reported, twin_before.reported);

    // A method response for a request that is not pending: ignored.
    let name = "a method response for a request id that is not pending";
    m.publish(
        "$iothub/methods/res/200/?$rid=nope",
        QoS::AtLeastOnce,
        b"{}",
    )
    .await
    .unwrap();
    alive(&mut m, name).await;
    bench.still_served(name).await;

    // A method response for the good device's pending request: ignored;
    // the call gets the good device's own answer.
    let name = "a method response for another device's pending request";
    let (mut g, _) = DeviceClient::connect(hub.mqtt_addr(), &bench.good, ConnectOptions::default())
        .await
        .unwrap();
    g.subscribe(&["$iothub/methods/POST/#"]).await.unwrap();
    let call = tokio::spawn({
        let hub = hub.clone();
        async move { hub.invoke_method(GOOD, "reboot", &json!({}), GUARD).await }
    });
    let request = g.next_publish(GUARD).await.unwrap();
    let rid = request.topic.rsplit("$rid=").next().unwrap().to_owned();
    m.publish(
        &format!("$iothub/methods/res/200/?$rid={rid}"),
        QoS::AtLeastOnce,
        br#"{"forged":true}"#,
    )
    .await
    .unwrap();
    alive(&mut m, name).await;
    g.publish(
        &format!("$iothub/methods/res/200/?$rid={rid}"),
        QoS::AtLeastOnce,
        br#"{"real":true}"#,
    )
    .await
    .unwrap();
    let answer = call.await.unwrap().unwrap();
    assert_eq!(
        (answer.status, answer.payload),
        (200, json!({"real": true})),
        "{name}"
    );
    g.disconnect().await.unwrap();
    bench.still_served(name).await;

    let name = "a PUBACK for a packet id the hub never sent";
    m.send(Packet::PubAck(PubAck::new(77))).await.unwrap();
    alive(&mut m, name).await;

    let name = "UNSUBSCRIBE from the good device's C2D filter";
    m.send(Packet::Unsubscribe(Unsubscribe::new(
        "devices/good/messages/devicebound/#",
    )))
    .await
    .unwrap();
    assert!(
        matches!(m.recv(GUARD).await.unwrap(), Some(Packet::UnsubAck(_))),
        "{name}"
    );
    alive(&mut m, name).await;
    bench.still_served(name).await;

    // QoS 2 is not spoken: a QoS 2 subscription is granted QoS 1.
    let name = "a QoS 2 subscription to its own C2D filter";
    m.send(Packet::Subscribe(Subscribe {
        pkid: 9,
        filters: vec![SubscribeFilter::new(
            "devices/mallory/messages/devicebound/#".into(),
            QoS::ExactlyOnce,
        )],
    }))
    .await
    .unwrap();
    match m.recv(GUARD).await.unwrap() {
        Some(Packet::SubAck(a)) => assert_eq!(
            a.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            "{name}"
        ),
        other => panic!("{name}: {other:?}"),
    }
    alive(&mut m, name).await;
    bench.still_served(name).await;
    m.disconnect().await.unwrap();
    bench.assert_rss_bounded("after twin and method misuse");
}

/// A client that sends its CONNECT one byte at a time, each byte well within
/// the CONNECT timeout, is still cut when the timeout (counted from the end
/// of the handshake) runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connect_is_cut_at_the_connect_deadline() {
    let bench = Bench::start(|c| c.connect_timeout = CONNECT_TIMEOUT).await;
    let hub = &bench.hub;
    let mark = hub.journal().len();
    let (peer, tls) = tls_connect(
        hub,
        hub.mqtt_addr(),
        client_config(hub, Some(&bench.mallory)),
    )
    .await;
    let start = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(tls.unwrap());
    // A CONNECT announcing 1000 bytes (remaining length e8 07), dribbled.
    let mut connect = vec![0x10, 0xe8, 0x07];
    connect.extend([0x41; 1000]);
    tokio::select! {
        _ = dribble(&mut wr, &connect, CONNECT_TIMEOUT / 6) => unreachable!(),
        got = read_until_closed(&mut rd, "slowloris CONNECT") => assert!(got.is_empty(), "{got:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= CONNECT_TIMEOUT - Duration::from_millis(50) && took < CONNECT_TIMEOUT * 4,
        "cut after {took:?} (timeout {CONNECT_TIMEOUT:?})"
    );
    expect_peer(hub, mark, peer, "slowloris CONNECT", |e| {
        matches!(
            e,
            Event::SessionClosed {
                reason: CloseReason::ConnectTimeout,
                ..
            }
        )
    })
    .await;
    bench.still_served("a slowloris CONNECT").await;
    bench.assert_rss_bounded("after a slowloris CONNECT");
}
