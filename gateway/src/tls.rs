//! Certificates and TLS configurations: the S3 endpoint's identity (from files, or
//! issued by a local CA generated in the data directory), the edge stores', and the
//! client configurations for locations (system roots plus a per-location CA
//! bundle). The handshakes and record layer belong to the offload layer's
//! [`TlsEngine`]; this module only prepares what it needs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use offload::tls::{TlsEngine, client_builder, server_builder};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::keys::write_private_file;

/// Directory under the data directory holding the local CA.
pub const TLS_DIR: &str = "tls";
/// The local CA's certificate: what clients are told to trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The local CA's private key (0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// A TLS set-up problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Certificate generation failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The private file could not be written.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// A certificate chain and its key.
pub struct Identity {
    /// The chain, the end-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

/// Reads a PEM certificate chain and private key.
pub fn load_identity(cert_file: &Path, key_file: &Path) -> Result<Identity, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| TlsError::Pem { path: cert_file.to_path_buf(), why: e.to_string() })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: cert_file.to_path_buf(), why: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert_file.to_path_buf(), why: "no certificate in the file".into() });
    }
    crate::keys::refuse_public(key_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::Pem { path: key_file.to_path_buf(), why: e.to_string() })?;
    Ok(Identity { chain, key })
}

/// The CA generated in a data directory: it issues the S3 endpoint's certificate
/// and the in-process edge stores'.
pub struct LocalCa {
    cert_path: PathBuf,
    cert: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued by a [`LocalCa`], in both forms.
pub struct Issued {
    /// For a rustls server.
    pub identity: Identity,
    /// The chain (certificate, then the CA's), PEM.
    pub chain_pem: String,
    /// The private key, PEM.
    pub key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("cert", &self.cert_path).finish_non_exhaustive()
    }
}

/// The CA's parameters, derived from its key alone so that the issuer can be
/// rebuilt from the key file: the common name carries a fingerprint of the key.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, rcgen::PublicKeyData::der_bytes(key));
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Skyshard");
    dn.push(DnType::CommonName, format!("Skyshard local CA {}", hex::encode(&fingerprint.as_ref()[..6])));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

impl LocalCa {
    /// Loads the CA kept in `dir` (`ca.pem`, `ca.key`; the gateway's is
    /// `<data_dir>/tls`), creating it first if needed (the key file 0600). Returns
    /// whether it was created.
    pub fn open_or_create(dir: &Path) -> Result<(Self, bool), TlsError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let created = !key_path.exists();
        if created {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let key = KeyPair::generate()?;
            let mut params = ca_params(&key);
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(3650);
            let cert = params.self_signed(&key)?;
            write_private_file(&key_path, key.serialize_pem().as_bytes())?;
            std::fs::write(&cert_path, cert.pem()).map_err(io_err(&cert_path))?;
        }
        let key_pem = crate::keys::read_private_file(&key_path)?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem { path: key_path.clone(), why: e.to_string() })?;
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Pem { path: cert_path.clone(), why: e.to_string() })?;
        let issuer = Issuer::new(ca_params(&key), key);
        Ok((Self { cert_path, cert, cert_pem, issuer }, created))
    }

    /// The CA certificate file clients should trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), valid
    /// for 397 days, with a fresh key.
    pub fn issue(&self, names: &[String]) -> Result<Issued, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Skyshard");
        dn.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "skyshard".into()));
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(397);
        let cert = params.signed_by(&key, &self.issuer)?;
        let identity = Identity {
            chain: vec![cert.der().clone(), self.cert.clone()],
            key: PrivateKeyDer::try_from(key.serialize_der())
                .map_err(|e| TlsError::Pem { path: PathBuf::from("(generated)"), why: e.to_string() })?,
        };
        Ok(Issued {
            identity,
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// The names a generated certificate for an endpoint on `listen` covers:
/// loopback, the listen address, `extra`, and each virtual-host domain and its
/// subdomains.
pub fn endpoint_names(listen: IpAddr, domains: &[String], extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    for d in domains {
        names.push(d.clone());
        names.push(format!("*.{d}"));
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A server configuration for HTTP/1.1 over `engine`.
pub fn server_config(identity: Identity, engine: &TlsEngine) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = server_builder().with_no_client_auth().with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    engine.prepare_server(&mut config);
    Ok(Arc::new(config))
}

/// The system's trusted roots, read once (`SSL_CERT_FILE` / `SSL_CERT_DIR` are
/// honoured, as by OpenSSL).
static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's CA certificates");
    }
    found.certs
});

/// Reads every certificate of a PEM bundle.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), why: e.to_string() })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), why: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.to_path_buf(), why: "no certificate in the file".into() });
    }
    Ok(certs)
}

/// The client configuration for a location: the system's roots plus its `ca_file`.
/// Warns about a location over plain HTTP.
pub fn location_client_config(
    loc: &crate::config::Location,
    engine: &TlsEngine,
) -> Result<Arc<ClientConfig>, TlsError> {
    let extra = match &loc.ca_file {
        Some(f) => load_ca_bundle(f)?,
        None => Vec::new(),
    };
    if loc.endpoint.scheme() == "http" {
        tracing::warn!(location = %loc.name, "location over plain HTTP: fragments are ciphertext, but the transport is not authenticated");
    }
    client_config(&extra, engine)
}

/// A client configuration trusting the system's roots and `extra` (a location's
/// CA bundle), for `engine`. Certificates are always verified.
pub fn client_config(extra: &[CertificateDer<'static>], engine: &TlsEngine) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
    for c in extra {
        roots.add(c.clone())?;
    }
    let mut config = client_builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    engine.prepare_client(&mut config);
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_ca_survives_a_restart_and_issues_verifiable_certificates() {
        let dir = crate::testing::scratch_dir("tls");
        let (ca, created) = LocalCa::open_or_create(&dir.join(TLS_DIR)).expect("create");
        assert!(created);
        let key_mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(TLS_DIR).join(CA_KEY_FILE)).expect("key").permissions().mode() & 0o777
        };
        assert_eq!(key_mode, 0o600);
        let first = ca.cert().clone();
        let (ca, created) = LocalCa::open_or_create(&dir.join(TLS_DIR)).expect("reopen");
        assert!(!created);
        assert_eq!(ca.cert(), &first, "the CA is kept");
        let id = ca
            .issue(&endpoint_names("127.0.0.1".parse().expect("ip"), &["s3.test".into()], &[]))
            .expect("issue")
            .identity;
        // A rustls client trusting only the CA accepts the issued chain for each name.
        let mut roots = RootCertStore::empty();
        roots.add(first).expect("root");
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), offload::tls::provider())
                .build()
                .expect("verifier");
        for name in ["localhost", "127.0.0.1", "s3.test", "bucket.s3.test"] {
            let server_name = rustls::pki_types::ServerName::try_from(name).expect("name");
            verifier
                .verify_server_cert(&id.chain[0], &id.chain[1..], &server_name, &[], rustls::pki_types::UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("example.com").expect("name");
        assert!(
            verifier.verify_server_cert(&id.chain[0], &[], &other, &[], rustls::pki_types::UnixTime::now()).is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
