//! The device's TLS client against hubs with bad certificates (MT-05…MT-09),
//! SNI (MT-14) and the client certificate (MT-04): the correct device aborts,
//! and each fault switch makes it accept exactly what it names.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use device_core::faults::{Fault, FaultSet};
use device_native::tls::{client_config, ClientCredential};
use hub_fixture::pki::{pem_to_der, CertificateAuthority, IssuedCert, KeyAlgorithm, Validity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const HOST: &str = "hub.example.test";

struct Seen {
    sni: Option<String>,
    client_cert: bool,
}

/// A one-shot TLS server presenting `cert`; reports what the client sent.
async fn server(
    cert: &IssuedCert,
    client_ca: &CertificateAuthority,
) -> (std::net::SocketAddr, oneshot::Receiver<Option<Seen>>) {
    let provider = device_native::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.cert_der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_ref().unwrap().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.cert_der.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let seen = acceptor.accept(tcp).await.ok().map(|s| {
            let (_, conn) = s.get_ref();
            Seen {
                sni: conn.server_name().map(str::to_owned),
                client_cert: conn.peer_certificates().is_some(),
            }
        });
        let _ = tx.send(seen);
    });
    (addr, rx)
}

struct Pki {
    ca: CertificateAuthority,
    device: IssuedCert,
}

fn pki() -> Pki {
    let ca = CertificateAuthority::generate("hub CA", SystemTime::now()).unwrap();
    let device = ca
        .issue_device(
            "dev-1",
            KeyAlgorithm::EcdsaP256,
            Validity::days_from(SystemTime::now(), 1),
        )
        .unwrap();
    Pki { ca, device }
}

/// Connects like the device; Ok = handshake completed.
async fn device_connects(
    p: &Pki,
    hub_cert: &IssuedCert,
    faults: FaultSet,
) -> Result<Option<Seen>, String> {
    let (addr, seen) = server(hub_cert, &p.ca).await;
    let credential = ClientCredential {
        chain: vec![p.device.cert_der.clone()],
        key: PrivateKeyDer::from_pem_slice(p.device.key_pem.as_ref().unwrap().as_bytes()).unwrap(),
    };
    let anchor: CertificateDer<'static> = pem_to_der(p.ca.cert_pem()).unwrap();
    let config = client_config(&anchor, Some(credential), faults, &[]).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(HOST.to_owned()).unwrap();
    let result = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await;
    let seen = tokio::time::timeout(Duration::from_secs(20), seen)
        .await
        .expect("server finished")
        .unwrap();
    result.map(|_| seen).map_err(|e| e.to_string())
}

fn valid() -> Validity {
    Validity::days_from(SystemTime::now(), 30)
}

#[tokio::test]
async fn a_good_hub_is_accepted_with_sni_and_client_cert() {
    let p = pki();
    let hub = p.ca.issue_server(&[HOST.into()], valid()).unwrap();
    let seen = device_connects(&p, &hub, FaultSet::NONE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.sni.as_deref(), Some(HOST));
    assert!(seen.client_cert);

    let seen = device_connects(&p, &hub, FaultSet::NONE.with(Fault::NoSni))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.sni, None, "no-sni sends no SNI");
    let seen = device_connects(&p, &hub, FaultSet::NONE.with(Fault::NoClientCert))
        .await
        .unwrap()
        .unwrap();
    assert!(!seen.client_cert, "no-client-cert presents none");
}

#[tokio::test]
async fn bad_hub_certificates_are_refused_unless_a_fault_says_otherwise() {
    let p = pki();
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let foreign = CertificateAuthority::generate("foreign CA", now).unwrap();
    let untrusted = foreign.issue_server(&[HOST.into()], valid()).unwrap();
    let wrong_name =
        p.ca.issue_server(&["other.example.test".into()], valid())
            .unwrap();
    let expired =
        p.ca.issue_server(
            &[HOST.into()],
            Validity {
                not_before: now - 10 * day,
                not_after: now - day,
            },
        )
        .unwrap();
    let not_yet =
        p.ca.issue_server(
            &[HOST.into()],
            Validity {
                not_before: now + day,
                not_after: now + 10 * day,
            },
        )
        .unwrap();
    let self_signed = {
        let c = rcgen::generate_simple_self_signed(vec![HOST.to_owned()]).unwrap();
        IssuedCert {
            cert_der: c.cert.der().clone(),
            cert_pem: c.cert.pem(),
            key_pem: Some(c.signing_key.serialize_pem()),
            serial: String::new(),
            thumbprint: String::new(),
            validity: valid(),
        }
    };
    let cases = [
        ("untrusted CA (MT-05)", &untrusted, "UnknownIssuer", false),
        (
            "wrong host name (MT-06)",
            &wrong_name,
            "not valid for name",
            true,
        ),
        ("expired (MT-07)", &expired, "certificate expired", false),
        ("not yet valid (MT-08)", &not_yet, "not valid before", false),
        ("self-signed (MT-09)", &self_signed, "UnknownIssuer", false),
    ];
    for (what, cert, reason, name_only) in cases {
        let err = device_connects(&p, cert, FaultSet::NONE)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} accepted"));
        assert!(err.contains(reason), "{what}: {err}");
        assert!(
            device_connects(&p, cert, FaultSet::NONE.with(Fault::NoServerVerify))
                .await
                .is_ok(),
            "{what} with no-server-verify"
        );
        let with_name_fault =
            device_connects(&p, cert, FaultSet::NONE.with(Fault::NoHostnameCheck)).await;
        assert_eq!(
            with_name_fault.is_ok(),
            name_only,
            "{what}: no-hostname-check skips only the name check"
        );
    }
}

/// What a ClientHello offers (read with rustls' lazy acceptor), and whether
/// the handshake then completed.
async fn offered_suites(p: &Pki, faults: FaultSet) -> (Vec<rustls::CipherSuite>, bool) {
    let hub = p.ca.issue_server(&[HOST.into()], valid()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(hub.key_pem.as_ref().unwrap().as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(device_native::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![hub.cert_der.clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .unwrap();
        let suites = start.client_hello().cipher_suites().to_vec();
        let ok = start.into_stream(config).await.is_ok();
        (suites, ok)
    });
    let anchor: CertificateDer<'static> = pem_to_der(p.ca.cert_pem()).unwrap();
    let config = client_config(&anchor, None, faults, &[]).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client_ok = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(HOST.to_owned()).unwrap(), tcp)
        .await
        .is_ok();
    let (suites, server_ok) = server.await.unwrap();
    (suites, client_ok && server_ok)
}

#[tokio::test]
async fn weak_ciphers_are_offered_only_under_the_fault() {
    let p = pki();
    let weak = device_native::tls::WEAK_SUITES;
    let (suites, ok) = offered_suites(&p, FaultSet::NONE).await;
    assert!(ok);
    assert!(!suites.iter().any(|s| weak.contains(s)), "{suites:?}");
    let (suites, ok) = offered_suites(&p, FaultSet::NONE.with(Fault::WeakCiphers)).await;
    assert!(ok, "an AEAD suite is still negotiated");
    for w in weak {
        assert!(suites.contains(&w), "{w:?} offered: {suites:?}");
    }
}
