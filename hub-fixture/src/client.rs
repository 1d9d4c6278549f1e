//! A minimal MQTT-over-mTLS device client, speaking through the same codec
//! as the hub. Self-test cases and the hub's own tests use it to act as a
//! device, including a misbehaving one (it can send any packet or raw bytes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, Login, Packet, PubAck, Publish, SubAck, Subscribe, SubscribeFilter,
};
use rumqttc::mqttbytes::QoS;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::hub::DeviceCredentials;

/// API version devices put in the CONNECT user name.
pub const API_VERSION: &str = "2021-04-12";

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket error: TCP connect, the TLS handshake, or a write.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// rustls refused the client configuration (roots, protocol versions,
    /// client certificate and key).
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    /// A certificate or key PEM that does not parse, or a server name that
    /// is not a valid DNS name or IP address.
    #[error("bad PEM: {0}")]
    Pem(String),
    /// A packet the MQTT codec could not encode or decode.
    #[error("MQTT codec: {0}")]
    Codec(String),
    /// Nothing arrived before the deadline; names what was awaited.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The hub closed the connection first; names the packet that was awaited.
    #[error("connection closed while waiting for {0}")]
    Closed(&'static str),
    /// The hub sent a packet other than the awaited answer.
    #[error("unexpected packet {0:?}")]
    Unexpected(Box<Packet>),
}

/// TLS client configuration: trust `ca_pem`, present `cert_pem`/`key_pem` if given.
pub fn tls_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| ClientError::Pem(e.to_string()))?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Pem(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ClientError::Pem(e.to_string()))?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Opens TCP + TLS to `addr`, verifying the hub as `server_name`.
pub async fn connect_tls(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| ClientError::Pem(e.to_string()))?;
    Ok(TlsConnector::from(config).connect(name, tcp).await?)
}

/// CONNECT options; `None` fields take the contract's values.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The MQTT client id; `None`: the credentials' device id.
    pub client_id: Option<String>,
    /// The CONNECT user name; `None`: `{hub_host}/{device_id}/?api-version=`[`API_VERSION`].
    pub user_name: Option<String>,
    /// The keep-alive interval in seconds, as sent in CONNECT; 0 (the default)
    /// turns keep-alive off.
    pub keep_alive: u16,
    /// CleanSession=0: ask the hub to keep (or resume) the session.
    pub persistent: bool,
}

/// One device connection.
pub struct DeviceClient {
    stream: TlsStream<TcpStream>,
    buf: BytesMut,
    next_packet_id: u16,
}

impl DeviceClient {
    /// Connects with `creds` and sends CONNECT; returns the client and the CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        creds: &DeviceCredentials,
        options: ConnectOptions,
    ) -> Result<(Self, ConnAck), ClientError> {
        let config = tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem)))?;
        let stream = connect_tls(addr, &creds.hub_host, config).await?;
        let mut client = Self::over(stream);
        let mut connect =
            Connect::new(options.client_id.unwrap_or_else(|| creds.device_id.clone()));
        connect.keep_alive = options.keep_alive;
        connect.clean_session = !options.persistent;
        let user = options.user_name.unwrap_or_else(|| {
            format!(
                "{}/{}/?api-version={API_VERSION}",
                creds.hub_host, creds.device_id
            )
        });
        connect.login = Some(Login::new(user, ""));
        client.send(Packet::Connect(connect)).await?;
        match client.recv(Duration::from_secs(10)).await? {
            Some(Packet::ConnAck(ack)) => Ok((client, ack)),
            Some(other) => Err(ClientError::Unexpected(Box::new(other))),
            None => Err(ClientError::Closed("CONNACK")),
        }
    }

    /// Wraps an established TLS stream (for tests that handshake themselves).
    pub fn over(stream: TlsStream<TcpStream>) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            next_packet_id: 1,
        }
    }

    /// Encodes `packet` and writes it, whatever it is (no check that it fits
    /// the session's state: tests send out-of-order packets on purpose).
    pub async fn send(&mut self, packet: Packet) -> Result<(), ClientError> {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, usize::MAX)
            .map_err(|e| ClientError::Codec(e.to_string()))?;
        self.send_raw(&out).await
    }

    /// Writes `bytes` as they are and flushes: for malformed or hand-framed packets.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next packet; `None` when the hub closed the connection. `timeout`
    /// guards against a hung test only.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Option<Packet>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match Packet::read(&mut self.buf, usize::MAX) {
                Ok(p) => return Ok(Some(p)),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(ClientError::Codec(e.to_string())),
            }
            let mut chunk = [0u8; 8192];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(ClientError::Timeout("a packet")),
                Ok(Ok(n)) => n,
                // A reset or TLS-level close after the hub dropped us counts as closed.
                Ok(Err(_)) => 0,
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits until the hub closes the connection, skipping packets; true if it did.
    pub async fn closed_by_hub(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(ClientError::Timeout(_)) => return false,
                Err(_) => return true,
            }
        }
    }

    fn packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Publishes; at QoS 1 waits for the PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        let mut p = Publish::new(topic, qos, payload.to_vec());
        if qos != QoS::AtMostOnce {
            p.pkid = self.packet_id();
        }
        let pid = p.pkid;
        self.send(Packet::Publish(p)).await?;
        if qos == QoS::AtLeastOnce {
            match self.recv(Duration::from_secs(10)).await? {
                Some(Packet::PubAck(a)) if a.pkid == pid => {}
                Some(other) => return Err(ClientError::Unexpected(Box::new(other))),
                None => return Err(ClientError::Closed("PUBACK")),
            }
        }
        Ok(())
    }

    /// Subscribes at QoS 1 and waits for the SUBACK (packets before it are returned too).
    pub async fn subscribe(
        &mut self,
        filters: &[&str],
    ) -> Result<(SubAck, Vec<Packet>), ClientError> {
        let filters = filters
            .iter()
            .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
            .collect();
        let pkid = self.packet_id();
        self.send(Packet::Subscribe(Subscribe { pkid, filters }))
            .await?;
        let mut before = Vec::new();
        loop {
            match self.recv(Duration::from_secs(10)).await? {
                Some(Packet::SubAck(a)) if a.pkid == pkid => return Ok((a, before)),
                Some(other) => before.push(other),
                None => return Err(ClientError::Closed("SUBACK")),
            }
        }
    }

    /// Subscribes to this device's C2D topic.
    pub async fn subscribe_c2d(
        &mut self,
        device_id: &str,
    ) -> Result<(SubAck, Vec<Packet>), ClientError> {
        self.subscribe(&[&format!("devices/{device_id}/messages/devicebound/#")])
            .await
    }

    /// The next PUBLISH (other packets are skipped).
    pub async fn next_publish(&mut self, timeout: Duration) -> Result<Publish, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Some(Packet::Publish(p)) => return Ok(p),
                Some(_) => continue,
                None => return Err(ClientError::Closed("PUBLISH")),
            }
        }
    }

    /// Acknowledges the QoS 1 PUBLISH with packet id `pkid` (e.g. a C2D message).
    pub async fn puback(&mut self, pkid: u16) -> Result<(), ClientError> {
        self.send(Packet::PubAck(PubAck::new(pkid))).await
    }

    /// Sends DISCONNECT and closes TLS.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.send(Packet::Disconnect).await?;
        self.stream.shutdown().await?;
        Ok(())
    }
}
