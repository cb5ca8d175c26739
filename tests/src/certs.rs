//! Certificates made in the test: a CA, server and client certificates it signs (valid, expired),
//! and HTTPS clients that trust the CA.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A certificate and its key.
pub struct Issued {
    /// The certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: KeyPair,
}

impl Issued {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The certificate, DER (what a client sees as the peer's certificate).
    pub fn der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }
}

/// A certificate authority.
pub struct Ca(Issued);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's defaults).
    Current,
    /// Through 2020 only.
    Expired,
}

/// `notAfter` of [`Validity::Expired`]: 2021-01-01T00:00:00Z.
pub const EXPIRED_NOT_AFTER: i64 = 1_609_459_200;

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca(Issued { cert, key })
    }

    /// The CA certificate, PEM (a `ca.crt`).
    pub fn cert_pem(&self) -> String {
        self.0.cert_pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.0.der()
    }

    fn issue(
        &self,
        names: &[&str],
        common_name: &str,
        serial: u64,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.0.cert, &self.0.key)
            .expect("signed");
        Issued { cert, key }
    }

    /// A server certificate for `127.0.0.1` and `localhost`, named `common_name`.
    pub fn server(&self, common_name: &str, serial: u64, validity: Validity) -> Issued {
        self.issue(
            &["127.0.0.1", "localhost"],
            common_name,
            serial,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        )
    }

    /// A client certificate named `common_name`.
    pub fn client(&self, common_name: &str, validity: Validity) -> Issued {
        self.issue(
            &[],
            common_name,
            7,
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
        )
    }
}

/// An HTTPS client trusting `ca`, presenting `identity` when given; a new connection for every
/// request (so each one is a new handshake), the peer's certificate in each response's
/// `reqwest::tls::TlsInfo`.
pub fn client(ca: &Ca, identity: Option<&Issued>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![id.der().clone()],
                PrivatePkcs8KeyDer::from(id.key.serialize_der()).into(),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .pool_max_idle_per_host(0)
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// The certificate the server presented for `response`.
pub fn peer_certificate(response: &reqwest::Response) -> Option<Vec<u8>> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
}
