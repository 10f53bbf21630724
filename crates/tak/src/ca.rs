//! The server's own certificate authority for TAK clients.
//!
//! TAK's convention is mutual TLS on port 8089: the server presents a
//! certificate, every client presents one signed by a CA the server trusts,
//! and the client's identity is its certificate. Here the CA is deconflict's
//! own, kept in the data directory (`tak-ca.pem`, and `tak-ca.key` with mode
//! 0600), and each party gets client certificates that say which party they
//! belong to:
//!
//! - subject `CN=<party name>, O=deconflict`, for people reading it in ATAK;
//! - a subject alternative name URI `urn:deconflict:party:<party id>`, which
//!   is what the listener reads ([`party_of_certificate`]): a name can be
//!   renamed or repeated, the id cannot;
//! - extended key usage `clientAuth` only, so a client certificate cannot
//!   serve as a server's, and the server's cannot log in as a party.
//!
//! Keys are ECDSA P-256 (what `ring` can generate; every TAK client and
//! Python's `ssl` accept it). To cut a party off, the listener refuses its
//! certificates issued before the revocation ([`crate::Revocations`], by
//! [`certificate_issued_at`]).

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deconflict_engine::PartyId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// The scheme of the URI that names a certificate's party.
pub const PARTY_URI_PREFIX: &str = "urn:deconflict:party:";

const CA_CERT_FILE: &str = "tak-ca.pem";
const CA_KEY_FILE: &str = "tak-ca.key";
const CA_COMMON_NAME: &str = "deconflict TAK CA";
const ORGANIZATION: &str = "deconflict";

/// How long the CA is valid. Long, because replacing it means re-issuing
/// every party's certificate.
const CA_VALIDITY_DAYS: i64 = 10 * 365;
/// Default validity of client and server certificates.
pub const DEFAULT_LEAF_VALIDITY_DAYS: u32 = 2 * 365;
/// Certificates start this long before they are issued, so that a client
/// whose clock is a little behind can still use a fresh one.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);
/// The longest party name put into a certificate subject (X.520's upper
/// bound for a common name).
pub const MAX_PARTY_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is readable by others (mode {mode:o}); the CA key must be mode 0600")]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("{present} exists but {missing} does not; restore it, or move both away to create a new CA")]
    HalfACa { present: PathBuf, missing: PathBuf },
    #[error("{path} is not a usable CA file: {message}")]
    BadCaFile { path: PathBuf, message: String },
    #[error("party name must be 1 to {MAX_PARTY_NAME_CHARS} characters without control characters")]
    BadPartyName,
    #[error("{0:?} is neither a DNS name nor an IP address")]
    BadServerName(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    #[error("PKCS#12 bundle failed: {0}")]
    Pkcs12(String),
}

/// Why a certificate does not name a party.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartyCertError {
    #[error("the certificate cannot be parsed")]
    Unparseable,
    #[error("the certificate has no {PARTY_URI_PREFIX}<id> subject alternative name")]
    NoPartyUri,
    #[error("the certificate names more than one party")]
    SeveralParties,
    #[error("{0:?} is not a party id")]
    BadPartyId(String),
}

/// A party's TAK client credentials, as PEM. pytak takes these as
/// `PYTAK_TLS_CLIENT_CERT`, `PYTAK_TLS_CLIENT_KEY` and
/// `PYTAK_TLS_CLIENT_CAFILE`.
#[derive(Clone)]
pub struct ClientCredentials {
    pub party: PartyId,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for ClientCredentials {
    // Never print a private key by accident (logs, panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("party", &self.party)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Where [`ClientCredentials::write_pem_files`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl ClientCredentials {
    /// Writes `<stem>.pem`, `<stem>.key` (mode 0600) and `<stem>-ca.pem`
    /// into `dir`, refusing to overwrite anything.
    pub fn write_pem_files(&self, dir: &Path, stem: &str) -> Result<CredentialFiles, CaError> {
        let files = CredentialFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
            ca: dir.join(format!("{stem}-ca.pem")),
        };
        write_new_file(&files.key, self.key_pem.as_bytes(), true)?;
        write_new_file(&files.cert, self.cert_pem.as_bytes(), false)?;
        write_new_file(&files.ca, self.ca_pem.as_bytes(), false)?;
        Ok(files)
    }
}

/// How a PKCS#12 bundle is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pkcs12Encryption {
    /// PBES2 with AES-256-CBC and an HMAC-SHA-256 MAC: OpenSSL 3's default,
    /// read by Android 8 and later, Python's `cryptography`, Java 8u301+.
    #[default]
    Aes256Sha256,
    /// PBE-SHA1-3DES with an HMAC-SHA-1 MAC, for old devices and keystores
    /// that know nothing newer. Weak against password guessing: pair it
    /// with a long random password.
    TripleDesSha1,
}

impl ClientCredentials {
    /// The client certificate, its key and the CA as one PKCS#12 file, as
    /// ATAK and WinTAK import them (TAK Server hands out `.p12` files);
    /// encrypted with `password`. The friendly name is the party's id.
    pub fn to_pkcs12(&self, password: &str, encryption: Pkcs12Encryption) -> Result<Vec<u8>, CaError> {
        let error = |e: p12_keystore::error::Error| CaError::Pkcs12(e.to_string());
        let key_der = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| CaError::Pkcs12(e.to_string()))?;
        let key = p12_keystore::PrivateKey::from_der(key_der.secret_der()).map_err(error)?;
        let certs = [&self.cert_pem, &self.ca_pem]
            .into_iter()
            .map(|pem| {
                let der = CertificateDer::from_pem_slice(pem.as_bytes())
                    .map_err(|e| CaError::Pkcs12(e.to_string()))?;
                p12_keystore::Certificate::from_der(&der).map_err(error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let alias = format!("deconflict-party-{}", self.party.0);
        let chain = p12_keystore::PrivateKeyChain::new(alias.as_bytes(), key, certs);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(&alias, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        write_pkcs12(&store, password, encryption)
    }
}

impl CertificateAuthority {
    /// The CA certificate alone as a PKCS#12 "truststore", the second file
    /// ATAK asks for when a server uses its own CA.
    pub fn truststore_pkcs12(
        &self,
        password: &str,
        encryption: Pkcs12Encryption,
    ) -> Result<Vec<u8>, CaError> {
        let cert = p12_keystore::Certificate::from_der(&self.cert_der)
            .map_err(|e| CaError::Pkcs12(e.to_string()))?;
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "deconflict-tak-ca",
            p12_keystore::KeyStoreEntry::Certificate(cert),
        );
        write_pkcs12(&store, password, encryption)
    }
}

fn write_pkcs12(
    store: &p12_keystore::KeyStore,
    password: &str,
    encryption: Pkcs12Encryption,
) -> Result<Vec<u8>, CaError> {
    let (cipher, mac) = match encryption {
        Pkcs12Encryption::Aes256Sha256 => (
            p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            p12_keystore::MacAlgorithm::HmacSha256,
        ),
        Pkcs12Encryption::TripleDesSha1 => (
            p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            p12_keystore::MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(password)
        .encryption_algorithm(cipher)
        .mac_algorithm(mac)
        .write()
        .map_err(|e| CaError::Pkcs12(e.to_string()))
}

/// The listener's certificate and key, signed by the CA.
#[derive(Clone)]
pub struct ServerCredentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The CA: its certificate and the key that signs party and server
/// certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    leaf_validity_days: u32,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("leaf_validity_days", &self.leaf_validity_days)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA kept in `dir`, or creates one there if neither file
    /// exists. Refuses a key file others can read, and a directory holding
    /// only one of the two files (a lost key must not be silently replaced:
    /// every issued certificate would stop working).
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path),
            (false, false) => Self::create(dir, &cert_path, &key_path),
            (true, false) => Err(CaError::HalfACa {
                present: cert_path,
                missing: key_path,
            }),
            (false, true) => Err(CaError::HalfACa {
                present: key_path,
                missing: cert_path,
            }),
        }
    }

    /// A CA that lives only in memory (tests, benchmarks).
    pub fn ephemeral() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let params = ca_params();
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            leaf_validity_days: DEFAULT_LEAF_VALIDITY_DAYS,
        })
    }

    fn create(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        fs::create_dir_all(dir).map_err(|source| CaError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let ca = Self::ephemeral()?;
        // Key first, created 0600 from the start (never world-readable, not
        // even for an instant); a crash between the two writes leaves a
        // half CA that load_or_create reports instead of overwriting.
        write_new_file(key_path, ca.issuer.key().serialize_pem().as_bytes(), true)?;
        write_new_file(cert_path, ca.cert_pem.as_bytes(), false)?;
        Ok(ca)
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        check_private(key_path)?;
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| CaError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let bad = |path: &Path, message: String| CaError::BadCaFile {
            path: path.to_owned(),
            message,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(key_path, e.to_string()))?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| bad(cert_path, e.to_string()))?;
        // The certificate must be for this key, or everything issued would
        // fail verification against it.
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| bad(cert_path, e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad(
                cert_path,
                format!("it is not the certificate of {}", key_path.display()),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| bad(cert_path, e.to_string()))?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem,
            cert_der,
            leaf_validity_days: DEFAULT_LEAF_VALIDITY_DAYS,
        })
    }

    /// Sets how long the certificates issued from now on are valid.
    pub fn set_leaf_validity_days(&mut self, days: u32) {
        self.leaf_validity_days = days.max(1);
    }

    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A client certificate for `party`, carrying its id in a SAN URI and
    /// its name as the common name.
    pub fn issue_client(&self, party: PartyId, party_name: &str) -> Result<ClientCredentials, CaError> {
        let name_ok = (1..=MAX_PARTY_NAME_CHARS).contains(&party_name.chars().count())
            && !party_name.chars().any(char::is_control);
        if !name_ok {
            return Err(CaError::BadPartyName);
        }
        let mut params = self.leaf_params();
        params.distinguished_name.push(DnType::CommonName, party_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        let uri = format!("{PARTY_URI_PREFIX}{}", party.0);
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCredentials {
            party,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// The listener's certificate: valid for `localhost`, `127.0.0.1`, `::1`
    /// and each of `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<ServerCredentials, CaError> {
        let mut params = self.leaf_params();
        params
            .distinguished_name
            .push(DnType::CommonName, "deconflict TAK server");
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        let mut sans = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress("::1".parse().expect("a literal IPv6 address")),
        ];
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if is_dns_name(name) => SanType::DnsName(name.as_str().try_into()?),
                Err(_) => return Err(CaError::BadServerName(name.clone())),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCredentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls server configuration that presents `server` and requires
    /// every client to present a certificate issued by this CA.
    pub fn tls_server_config(
        &self,
        server: &ServerCredentials,
    ) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| CaError::Tls(e.to_string()))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| CaError::Tls(e.to_string()))?;
        let chain = vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
            .map_err(|e| CaError::Tls(e.to_string()))?];
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
            .map_err(|e| CaError::Tls(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }

    fn leaf_params(&self) -> CertificateParams {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = now + Duration::days(i64::from(self.leaf_validity_days));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params
    }
}

fn ca_params() -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    // Path length 0: this CA signs leaf certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    params
}

/// 16 random bytes: serials must be unique per CA (RFC 5280), and random
/// ones need no counter on disk.
fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and of full length, as DER INTEGER serials must be.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The party a (verified) client certificate belongs to.
pub fn party_of_certificate(der: &[u8]) -> Result<PartyId, PartyCertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| PartyCertError::Unparseable)?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|_| PartyCertError::Unparseable)?
        .ok_or(PartyCertError::NoPartyUri)?;
    let mut found = None;
    for name in &sans.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(PARTY_URI_PREFIX) {
                let id: u64 = id
                    .parse()
                    .map_err(|_| PartyCertError::BadPartyId(id.chars().take(40).collect()))?;
                if found.replace(PartyId(id)).is_some() {
                    return Err(PartyCertError::SeveralParties);
                }
            }
        }
    }
    found.ok_or(PartyCertError::NoPartyUri)
}

/// When a certificate of this CA was issued, Unix seconds: its `notBefore`
/// is set that long before issue ([`CLOCK_SKEW_ALLOWANCE`]).
pub fn certificate_issued_at(der: &[u8]) -> Result<i64, PartyCertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| PartyCertError::Unparseable)?;
    Ok(cert.validity().not_before.timestamp() + CLOCK_SKEW_ALLOWANCE.whole_seconds())
}

/// Creates `path` (never overwriting), private to the owner if `private`.
fn write_new_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn check_private(path: &Path) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)
            .map_err(|source| CaError::Io {
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::KeyFileTooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::UnixTime;

    fn verifier_of(ca: &CertificateAuthority) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.ca_der().clone()).unwrap();
        WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn an_issued_client_certificate_verifies_and_names_its_party() {
        let ca = CertificateAuthority::ephemeral().unwrap();
        let credentials = ca.issue_client(PartyId(42), "Blue Force <HQ>").unwrap();
        let cert = der(&credentials.cert_pem);
        verifier_of(&ca)
            .verify_client_cert(&cert, &[], UnixTime::now())
            .expect("issued by this CA");
        assert_eq!(party_of_certificate(&cert), Ok(PartyId(42)));
        assert_eq!(credentials.ca_pem, ca.ca_pem());
        assert!(credentials.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{credentials:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn another_cas_certificate_is_refused() {
        let ours = CertificateAuthority::ephemeral().unwrap();
        let theirs = CertificateAuthority::ephemeral().unwrap();
        let foreign = der(&theirs.issue_client(PartyId(1), "Intruder").unwrap().cert_pem);
        assert!(verifier_of(&ours)
            .verify_client_cert(&foreign, &[], UnixTime::now())
            .is_err());
    }

    #[test]
    fn the_server_certificate_cannot_log_in_as_a_client() {
        let ca = CertificateAuthority::ephemeral().unwrap();
        let server = der(&ca.issue_server(&[]).unwrap().cert_pem);
        assert!(verifier_of(&ca)
            .verify_client_cert(&server, &[], UnixTime::now())
            .is_err());
        assert_eq!(party_of_certificate(&server), Err(PartyCertError::NoPartyUri));
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let ca = CertificateAuthority::ephemeral().unwrap();
        let cert = der(&ca.issue_client(PartyId(1), "Short").unwrap().cert_pem);
        let in_three_years = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            (OffsetDateTime::now_utc() + Duration::days(3 * 365)).unix_timestamp() as u64,
        ));
        assert!(verifier_of(&ca)
            .verify_client_cert(&cert, &[], in_three_years)
            .is_err());
    }

    #[test]
    fn the_ca_survives_a_restart_and_keeps_verifying_what_it_issued() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let issued = der(&first.issue_client(PartyId(7), "Seven").unwrap().cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(again.ca_pem(), first.ca_pem());
        verifier_of(&again)
            .verify_client_cert(&issued, &[], UnixTime::now())
            .unwrap();
        // And what the reloaded CA issues verifies against the original.
        let later = der(&again.issue_client(PartyId(8), "Eight").unwrap().cert_pem);
        verifier_of(&first)
            .verify_client_cert(&later, &[], UnixTime::now())
            .unwrap();
    }

    #[test]
    fn a_half_ca_or_an_open_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_create(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let key = dir.path().join(CA_KEY_FILE);
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                CertificateAuthority::load_or_create(dir.path()),
                Err(CaError::KeyFileTooOpen { mode: 0o644, .. })
            ));
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load_or_create(dir.path()),
            Err(CaError::HalfACa { .. })
        ));
    }

    #[test]
    fn a_certificate_of_another_key_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_create(dir.path()).unwrap();
        let other = CertificateAuthority::ephemeral().unwrap();
        fs::write(dir.path().join(CA_CERT_FILE), other.ca_pem()).unwrap();
        assert!(matches!(
            CertificateAuthority::load_or_create(dir.path()),
            Err(CaError::BadCaFile { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        let ca = CertificateAuthority::ephemeral().unwrap();
        assert!(matches!(
            ca.issue_client(PartyId(1), ""),
            Err(CaError::BadPartyName)
        ));
        assert!(matches!(
            ca.issue_client(PartyId(1), "a\nb"),
            Err(CaError::BadPartyName)
        ));
        assert!(matches!(
            ca.issue_client(PartyId(1), &"n".repeat(65)),
            Err(CaError::BadPartyName)
        ));
        assert!(ca
            .issue_server(&["tak.example.org".into(), "10.0.0.5".into()])
            .is_ok());
        assert!(matches!(
            ca.issue_server(&["bad name".into()]),
            Err(CaError::BadServerName(_))
        ));
    }

    #[test]
    fn pkcs12_bundles_hold_the_key_the_chain_and_the_ca() {
        let ca = CertificateAuthority::ephemeral().unwrap();
        let credentials = ca.issue_client(PartyId(12), "Twelve").unwrap();
        for encryption in [Pkcs12Encryption::Aes256Sha256, Pkcs12Encryption::TripleDesSha1] {
            let bundle = credentials.to_pkcs12("atakatak", encryption).unwrap();
            let store = p12_keystore::KeyStore::from_pkcs12(
                &bundle,
                "atakatak",
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .unwrap();
            let (alias, chain) = store.private_key_chain().expect("a key chain");
            assert_eq!(alias, "deconflict-party-12");
            let leaf = chain.certs()[0].as_der();
            assert_eq!(party_of_certificate(leaf), Ok(PartyId(12)));
            assert_eq!(leaf, der(&credentials.cert_pem).as_ref());
            assert_eq!(chain.certs()[1].as_der(), ca.ca_der().as_ref());
            let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes()).unwrap();
            assert_eq!(chain.key().as_der(), key.secret_der());
            assert!(p12_keystore::KeyStore::from_pkcs12(
                &bundle,
                "wrong",
                p12_keystore::Pkcs12ImportPolicy::Strict
            )
            .is_err());
        }
        let truststore = ca
            .truststore_pkcs12("atakatak", Pkcs12Encryption::default())
            .unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &truststore,
            "atakatak",
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .unwrap();
        assert_eq!(store.entries_len(), 1);
        assert!(store.private_key_chain().is_none());
    }

    #[test]
    fn credentials_are_written_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::ephemeral().unwrap();
        let files = ca
            .issue_client(PartyId(3), "Three")
            .unwrap()
            .write_pem_files(dir.path(), "party-3")
            .unwrap();
        assert!(fs::read_to_string(&files.cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        assert_eq!(fs::read_to_string(&files.ca).unwrap(), ca.ca_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&files.key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Never overwritten.
        assert!(ca
            .issue_client(PartyId(3), "Three")
            .unwrap()
            .write_pem_files(dir.path(), "party-3")
            .is_err());
    }
}
