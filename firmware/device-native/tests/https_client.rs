//! The device's HTTPS client against the fixture hub: EST re-enrolment with a
//! new key, and a firmware download cut part-way and resumed with `Range`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::time::Duration;

use device_core::faults::FaultSet;
use device_native::https::{HttpsError, HubHttps};
use device_native::tls::{client_config, ClientCredential};
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::Event;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn https(hub: &HubFixture, creds: &DeviceCredentials) -> HubHttps {
    let anchor = CertificateDer::from_pem_slice(creds.ca_pem.as_bytes()).unwrap();
    let credential = ClientCredential {
        chain: vec![CertificateDer::from_pem_slice(creds.cert_pem.as_bytes()).unwrap()],
        key: PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes()).unwrap(),
    };
    HubHttps {
        addr: hub.https_addr(),
        host: hub.host_name().to_owned(),
        tls: client_config(&anchor, Some(credential), FaultSet::NONE, &[b"http/1.1"]).unwrap(),
    }
}

#[tokio::test]
async fn est_reenrolment_returns_a_certificate_for_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubFixture::start(HubConfig::for_tests(dir.path()))
        .await
        .unwrap();
    let creds = hub.register_device("dev-1").unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dev-1");
    let csr = params.serialize_request(&key).unwrap();
    let cert = https(&hub, &creds)
        .simple_reenroll(csr.der())
        .await
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    assert_eq!(
        parsed.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );

    // Another subject is refused, and the error carries the hub's reason.
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.distinguished_name = rcgen::DistinguishedName::new();
    other
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dev-2");
    let csr = other.serialize_request(&key).unwrap();
    match https(&hub, &creds).simple_reenroll(csr.der()).await {
        Err(HttpsError::Status {
            status: 400, body, ..
        }) => assert!(body.contains("subject"), "{body}"),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cut_download_resumes_with_range_and_the_bytes_match() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubFixture::start(HubConfig::for_tests(dir.path()))
        .await
        .unwrap();
    let creds = hub.register_device("dev-1").unwrap();
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    hub.put_firmware("1.4.0.img", &image).unwrap();
    let client = https(&hub, &creds);

    let mut got = vec![0u8; image.len()];
    let mut have = 0u64;
    // The "link" dies after 100 000 bytes.
    let cut = client
        .download("/firmware/1.4.0.img", 0, |off, data| {
            if off + data.len() as u64 > 100_000 {
                return Err("link lost".into());
            }
            got[off as usize..off as usize + data.len()].copy_from_slice(data);
            have = off + data.len() as u64;
            Ok(())
        })
        .await;
    assert!(cut.is_err());
    assert!(have > 0 && have <= 100_000);
    let mark = hub.journal().len();
    let mut first = None;
    let total = client
        .download("/firmware/1.4.0.img", have, |off, data| {
            first.get_or_insert(off);
            got[off as usize..off as usize + data.len()].copy_from_slice(data);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(first, Some(have), "resumed where it stopped");
    assert_eq!(total, image.len() as u64);
    assert!(got == image, "reassembled image differs");
    let e = hub
        .journal()
        .wait_for(mark, Duration::from_secs(20), |e| {
            matches!(e.event, Event::Download { .. })
        })
        .await
        .expect("download journalled");
    let text = serde_json::to_string(&e).unwrap();
    assert!(
        text.contains(&have.to_string()),
        "the journal records the range start: {text}"
    );
}
