//! The load generator: N devices on `rumqttc` (a maintained MQTT client)
//! over rustls, the same code against either broker. TLS session resumption
//! is off, so every connection is a full mutual-TLS handshake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, Semaphore};

use crate::brokers::{Device, Target, GUARD};

/// The device contract's user name; mosquitto takes the certificate's CN instead.
fn user_name(device: &str) -> String {
    format!("localhost/{device}/?api-version=2021-04-12")
}

pub fn tls(ca_pem: &str, d: &Device) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let certs =
        CertificateDer::pem_slice_iter(d.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(d.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

fn options(t: &Target, d: &Device, config: Arc<rustls::ClientConfig>) -> MqttOptions {
    let mut o = MqttOptions::new(d.id.clone(), "localhost", t.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    o.set_credentials(user_name(&d.id), "");
    o.set_keep_alive(Duration::from_secs(120));
    o.set_clean_session(true);
    o.set_max_packet_size(64 * 1024, 64 * 1024);
    o
}

/// Connects and returns once the CONNACK is in.
async fn connect(o: MqttOptions, cap: usize) -> Result<(AsyncClient, EventLoop)> {
    let (client, mut ev) = AsyncClient::new(o, cap);
    loop {
        match tokio::time::timeout(GUARD, ev.poll())
            .await
            .context("CONNACK timed out")?
        {
            Ok(Event::Incoming(Packet::ConnAck(a)))
                if a.code == rumqttc::ConnectReturnCode::Success =>
            {
                return Ok((client, ev))
            }
            Ok(Event::Incoming(Packet::ConnAck(a))) => bail!("refused: {:?}", a.code),
            Ok(_) => {}
            Err(e) => bail!("connect: {e}"),
        }
    }
}

async fn disconnect(client: AsyncClient, mut ev: EventLoop) {
    let _ = client.try_disconnect();
    while let Ok(Ok(e)) = tokio::time::timeout(GUARD, ev.poll()).await {
        if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// Full mTLS connect (TLS + CONNECT/CONNACK) then DISCONNECT, `total` times,
/// `concurrency` at once, cycling over `devices`. Returns connections/s.
pub async fn connection_rate(
    t: &Target,
    devices: &[Device],
    concurrency: usize,
    total: usize,
) -> Result<f64> {
    let configs: Vec<Arc<rustls::ClientConfig>> = devices
        .iter()
        .map(|d| tls(&t.ca_pem, d))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Worker w uses devices w, w+concurrency, ...: never two sessions of one device at once.
    for w in 0..concurrency {
        let (t, devices, configs) = (t.clone(), devices.to_vec(), configs.clone());
        tasks.spawn(async move {
            let mut i = w;
            let mut n = 0;
            while n < total / concurrency {
                let d = &devices[i % devices.len()];
                let (c, ev) =
                    connect(options(&t, d, configs[i % devices.len()].clone()), 10).await?;
                disconnect(c, ev).await;
                i += concurrency;
                n += 1;
            }
            anyhow::Ok(n)
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        done += r??;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// `publishers` devices each publish `per_device` QoS 1 messages of
/// `payload` bytes as fast as the broker acknowledges them (rumqttc's
/// in-flight window). Returns acknowledged messages/s.
pub async fn qos1_throughput(
    t: &Target,
    devices: &[Device],
    per_device: usize,
    payload: usize,
) -> Result<f64> {
    let mut sessions = Vec::new();
    for d in devices {
        let mut o = options(t, d, tls(&t.ca_pem, d)?);
        o.set_inflight(100);
        sessions.push((d.id.clone(), connect(o, 1000).await?));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, (client, mut ev)) in sessions {
        tasks.spawn(async move {
            let topic = format!("devices/{id}/messages/events/");
            let body = vec![b'x'; payload];
            let publisher = tokio::spawn({
                let client = client.clone();
                async move {
                    for _ in 0..per_device {
                        client
                            .publish(&topic, QoS::AtLeastOnce, false, body.clone())
                            .await?;
                    }
                    anyhow::Ok(())
                }
            });
            let mut acked = 0;
            while acked < per_device {
                match tokio::time::timeout(GUARD, ev.poll())
                    .await
                    .context("PUBACK timed out")?
                {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => bail!("publishing: {e}"),
                }
            }
            publisher.await??;
            disconnect(client, ev).await;
            anyhow::Ok(acked)
        });
    }
    let mut acked = 0;
    while let Some(r) = tasks.join_next().await {
        acked += r??;
    }
    Ok(acked as f64 / started.elapsed().as_secs_f64())
}

/// A live session kept open; its task reports when the broker ends it.
pub struct LiveSession {
    pub device: Device,
    pub closed: mpsc::Receiver<Instant>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Opens one session per device (`concurrency` handshakes at a time) and keeps them all open.
pub async fn hold_sessions(
    t: &Target,
    devices: &[Device],
    concurrency: usize,
) -> Result<Vec<LiveSession>> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut opening = tokio::task::JoinSet::new();
    for (i, d) in devices.iter().enumerate() {
        let (t, d, gate) = (t.clone(), d.clone(), gate.clone());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let (client, mut ev) = connect(options(&t, &d, tls(&t.ca_pem, &d)?), 10).await?;
            let (tx, closed) = mpsc::channel(1);
            let task = tokio::spawn(async move {
                let _client = client;
                loop {
                    if ev.poll().await.is_err() {
                        let _ = tx.send(Instant::now()).await;
                        return;
                    }
                }
            });
            anyhow::Ok((
                i,
                LiveSession {
                    device: d,
                    closed,
                    task,
                },
            ))
        });
    }
    let mut live: Vec<(usize, LiveSession)> = Vec::with_capacity(devices.len());
    while let Some(r) = opening.join_next().await {
        live.push(r??);
    }
    live.sort_by_key(|(i, _)| *i);
    Ok(live.into_iter().map(|(_, s)| s).collect())
}
