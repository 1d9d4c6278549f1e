//! The run's public-key infrastructure: one CA per run, a server certificate
//! for the hub's host name(s), and one certificate per device.
//!
//! Made with rcgen; ECDSA P-256 unless asked otherwise. Every certificate gets a
//! random 128-bit serial: rcgen's default derives the serial from the public
//! key, which would make a re-issued certificate for the same key (the
//! `rotate-same-key` fault) indistinguishable from the old one.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber, SignatureAlgorithm, SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Errors of certificate generation and loading.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen could not generate a key, build or sign a certificate, or parse
    /// a public key it was given.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A CA or key file could not be read, written or made owner-only.
    #[error("reading or writing {path}: {source}")]
    Io {
        /// The file, as displayed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A stored CA (`ca.pem`, `ca.key`) does not parse, or its key does not
    /// match its certificate.
    #[error("{path}: not a usable CA certificate/key: {reason}")]
    BadCa {
        /// The CA certificate file, as displayed.
        path: String,
        /// What is wrong with it, from the parser.
        reason: String,
    },
    /// The system random generator failed while drawing a certificate serial.
    #[error("the system random generator failed")]
    Random,
}

/// Key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519 (EdDSA on Curve25519).
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// The window in which a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// First instant the certificate is valid (X.509 notBefore), wall-clock time.
    pub not_before: SystemTime,
    /// Last instant the certificate is valid (X.509 notAfter), wall-clock time.
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from an hour before `now` (tolerates small clock skew) for `days` days.
    pub fn days_from(now: SystemTime, days: u64) -> Self {
        Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }
}

/// A certificate the CA issued, with its private key where the CA generated it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The same certificate as one PEM `CERTIFICATE` block.
    pub cert_pem: String,
    /// PKCS#8 PEM; `None` when the CA signed a public key it was given (EST).
    pub key_pem: Option<String>,
    /// Serial number, lower-case hex, as the registry and journal name it.
    pub serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub thumbprint: String,
    /// The validity window written into the certificate.
    pub validity: Validity,
}

/// SHA-256 thumbprint of a DER certificate, lower-case hex.
pub fn thumbprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// The run's certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert", &thumbprint(&self.cert_der))
            .finish_non_exhaustive()
    }
}

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";

impl CertificateAuthority {
    /// A new self-signed CA named `common_name`, valid for ten years from `now`.
    pub fn generate(common_name: &str, now: SystemTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let v = Validity::days_from(now, 3650);
        params.not_before = v.not_before.into();
        params.not_after = v.not_after.into();
        let rng = SystemRandom::new();
        params.serial_number = Some(random_serial(&rng)?);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der,
            cert_pem,
            key_pem,
            rng,
        })
    }

    /// Loads the CA from `dir` (`ca.pem`, `ca.key`), or creates and saves one.
    /// A hub restarted on the same data directory keeps its CA, so the devices'
    /// certificates stay valid.
    pub fn load_or_create(
        dir: &Path,
        common_name: &str,
        now: SystemTime,
    ) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() {
            let cert_pem = read(&cert_path)?;
            // A key file left readable by others (written before this rule,
            // or copied in) is made owner-only.
            make_owner_only(&key_path)?;
            let key_pem = read(&key_path)?;
            let bad = |reason: String| PkiError::BadCa {
                path: cert_path.display().to_string(),
                reason,
            };
            let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(e.to_string()))?;
            let issuer =
                Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| bad(e.to_string()))?;
            let cert_der =
                pem_to_der(&cert_pem).ok_or_else(|| bad("no CERTIFICATE block".into()))?;
            return Ok(Self {
                issuer,
                cert_der,
                cert_pem,
                key_pem,
                rng: SystemRandom::new(),
            });
        }
        let ca = Self::generate(common_name, now)?;
        write(&cert_path, &ca.cert_pem)?;
        write_private(&key_path, &ca.key_pem)?;
        Ok(ca)
    }

    /// The CA's own self-signed certificate, DER (the trust anchor devices and clients load).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's own self-signed certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA as an rcgen issuer, to sign what this module has no method
    /// for (the deliberately flawed chains of the MT cases' bad hubs).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// A TLS server certificate for `host_names` (DNS names or IP addresses).
    pub fn issue_server(
        &self,
        host_names: &[String],
        validity: Validity,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(host_names.to_vec())?;
        params.distinguished_name = dn(host_names.first().map(String::as_str).unwrap_or("hub"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(params, &key, validity, Some(key.serialize_pem()))
    }

    /// A device (TLS client) certificate with subject CN = `device_id` and a new key.
    pub fn issue_device(
        &self,
        device_id: &str,
        algorithm: KeyAlgorithm,
        validity: Validity,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate_for(algorithm.rcgen())?;
        self.sign(
            client_params(device_id),
            &key,
            validity,
            Some(key.serialize_pem()),
        )
    }

    /// Signs a public key the CA was given (EST re-enrolment): subject CN =
    /// `device_id`, the key from `spki_der` (a DER SubjectPublicKeyInfo).
    pub fn issue_for_public_key(
        &self,
        device_id: &str,
        spki_der: &[u8],
        validity: Validity,
    ) -> Result<IssuedCert, PkiError> {
        let spki = SubjectPublicKeyInfo::from_der(spki_der)?;
        self.sign(client_params(device_id), &spki, validity, None)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        key: &impl rcgen::PublicKeyData,
        validity: Validity,
        key_pem: Option<String>,
    ) -> Result<IssuedCert, PkiError> {
        params.not_before = OffsetDateTime::from(validity.not_before);
        params.not_after = OffsetDateTime::from(validity.not_after);
        let serial = random_serial(&self.rng)?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(key, &self.issuer)?;
        Ok(IssuedCert {
            thumbprint: thumbprint(cert.der()),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem,
            serial: serial_hex,
            validity,
        })
    }
}

fn client_params(device_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(device_id);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A positive 128-bit serial (RFC 5280 wants at most 20 octets, positive).
fn random_serial(rng: &SystemRandom) -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| PkiError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero octet, so the hex form is canonical
    Ok(SerialNumber::from_slice(&bytes))
}

/// The first CERTIFICATE block of a PEM text.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    fs::write(path, text).map_err(|source| PkiError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a private key owner-only (0600). A new file is created with that
/// mode, so the key is never readable by others, not even for a moment; an
/// existing one is set to 0600 before the key is written into it.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// Sets an existing file to 0600 unless it already is.
fn make_owner_only(path: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o777 != 0o600 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn device_cert_has_cn_client_auth_and_random_serial() {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate("test CA", now).unwrap();
        let a = ca
            .issue_device(
                "dev-1",
                KeyAlgorithm::EcdsaP256,
                Validity::days_from(now, 1),
            )
            .unwrap();
        let b = ca
            .issue_device(
                "dev-1",
                KeyAlgorithm::EcdsaP256,
                Validity::days_from(now, 1),
            )
            .unwrap();
        assert_ne!(a.serial, b.serial);
        let (_, cert) = X509Certificate::from_der(&a.cert_der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "dev-1");
        assert_eq!(hex::encode(cert.raw_serial()), a.serial);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    }

    #[test]
    fn ca_survives_reload_and_still_signs_for_the_same_chain() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let ca1 = CertificateAuthority::load_or_create(dir.path(), "CA", now).unwrap();
        let ca2 = CertificateAuthority::load_or_create(dir.path(), "CA", now).unwrap();
        assert_eq!(ca1.cert_der(), ca2.cert_der());
        let dev = ca2
            .issue_device("d", KeyAlgorithm::Ed25519, Validity::days_from(now, 1))
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&dev.cert_der).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(ca1.cert_der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    }

    #[test]
    fn signs_a_given_public_key() {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate("CA", now).unwrap();
        let key = KeyPair::generate().unwrap();
        let spki = key.subject_public_key_info();
        let issued = ca
            .issue_for_public_key("dev-9", &spki, Validity::days_from(now, 30))
            .unwrap();
        assert!(issued.key_pem.is_none());
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        assert_eq!(cert.public_key().raw, &spki[..]);
    }
}
