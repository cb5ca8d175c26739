//! HTTPS: the certificate and key of `--tls-cert-file` / `--tls-key-file`, optionally client
//! certificates signed by `--tls-client-ca-file` (mTLS), reloaded without a restart when
//! cert-manager rotates them.
//!
//! The `rustls::ServerConfig` in force sits in an arc-swap cell; every accepted connection takes
//! the one current when it arrives ([`Tls::acceptor`]), so a rotation applies to new connections
//! and never touches a handshake in progress or an open connection. The files' directories are
//! watched (the kubelet swaps a Secret volume's `..data` symlink, see
//! `adapters/file-config/src/dir.rs`) and re-read every `--tls-reload-interval` as a safety net;
//! a change is swapped in only when the certificate and the key parse, the key matches the
//! certificate and the client CA (when set) parses — a half-written rotation (a new certificate
//! with the old key) keeps the pair in force and is judged again on the next change.
//!
//! A certificate past its `notAfter` (or before its `notBefore`) is served all the same, with an
//! error log: refusing it would turn a late rotation into an outage (and a crash loop at start),
//! while a client that checks validity refuses it anyway, and `cert-manager` replaces it.
//! `gateway_tls_certificate_expiry_seconds` carries `notAfter`, so an alert fires before.

mod x509;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_adapter_file_config::{WatchHandle, WatchOptions, Watched};
use gateway_adapter_memory::SystemClock;
use gateway_ports::Clock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

pub use x509::Described;

use crate::cli::ServeArgs;
use crate::metrics::{Metrics, TlsReload};

/// Quiet time after a change in a watched directory before the files are read: the kubelet's
/// swap is a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The files TLS is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's certificate first.
    pub cert: PathBuf,
    /// The private key of the certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM: when set, a client must present a certificate one of them signed.
    pub client_ca: Option<PathBuf>,
    /// Re-read the files this often even without a change notification.
    pub reload_interval: Duration,
}

impl TlsFiles {
    /// The TLS the flags ask for: none, or a certificate and its key (both flags or neither),
    /// with an optional client CA.
    pub fn of(args: &ServeArgs) -> anyhow::Result<Option<TlsFiles>> {
        match (&args.tls_cert_file, &args.tls_key_file) {
            (Some(cert), Some(key)) => {
                if args.tls_reload_interval.is_zero() {
                    anyhow::bail!("--tls-reload-interval must be longer than zero");
                }
                Ok(Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.tls_client_ca_file.clone(),
                    reload_interval: args.tls_reload_interval,
                }))
            }
            (None, None) if args.tls_client_ca_file.is_some() => anyhow::bail!(
                "--tls-client-ca-file needs --tls-cert-file and --tls-key-file (client \
                 certificates are asked for only over TLS)"
            ),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("--tls-cert-file needs --tls-key-file"),
            (None, Some(_)) => anyhow::bail!("--tls-key-file needs --tls-cert-file"),
        }
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// Why a pair (and client CA) cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the kind expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The key does not belong to the certificate (a rotation half written).
    #[error("the key in {} does not match the certificate in {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' words.
        reason: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("{0}")]
    Config(String),
}

/// A certificate and key that parsed and match, with the client CA when asked for.
struct Loaded {
    config: Arc<ServerConfig>,
    certificate: Described,
}

/// The TLS configuration in force and what keeps it current.
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    /// A digest of what the files held at the last attempt: unchanged files are not judged
    /// again (a broken rotation is reported once, not every re-read).
    last_read: Mutex<[u8; 32]>,
    metrics: Metrics,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// The crypto provider, chosen here rather than taken from a process default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads the files: an unreadable or invalid pair is an error (the gateway does not start).
    pub fn load(files: TlsFiles, metrics: Metrics) -> anyhow::Result<Arc<Tls>> {
        let (read, digest) = read(&files);
        let loaded = read
            .and_then(|contents| build(&files, &contents))
            .map_err(|e| anyhow::anyhow!("cannot serve TLS: {e}"))?;
        announce(
            &loaded.certificate,
            &files,
            &metrics,
            "TLS certificate loaded",
        );
        metrics.tls_started();
        Ok(Arc::new(Tls {
            current: ArcSwap::new(loaded.config),
            files,
            last_read: Mutex::new(digest),
            metrics,
        }))
    }

    /// The files TLS is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor for one new connection, with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Reads the files again and swaps in what they hold when it changed and is valid.
    /// `None`: nothing changed since the last attempt.
    pub fn reload(&self) -> Option<Result<Described, TlsError>> {
        let (read, digest) = read(&self.files);
        {
            let mut last = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
            if *last == digest {
                return None;
            }
            *last = digest;
        }
        let outcome = read.and_then(|contents| build(&self.files, &contents));
        match outcome {
            Ok(loaded) => {
                self.current.store(loaded.config);
                self.metrics.tls_reloaded(TlsReload::Success);
                announce(
                    &loaded.certificate,
                    &self.files,
                    &self.metrics,
                    "TLS certificate reloaded: new connections use it",
                );
                Some(Ok(loaded.certificate))
            }
            Err(e) => {
                self.metrics.tls_reloaded(TlsReload::Error);
                tracing::error!(error = %e, "TLS files changed but cannot be served: the certificate in force stays; judged again on the next change");
                Some(Err(e))
            }
        }
    }

    /// Watches the files' directories — with the config directory's watcher, one per directory —
    /// and re-reads every `reload_interval`, until the handles are dropped.
    pub fn watch(self: &Arc<Self>) -> Vec<WatchHandle> {
        let dirs: BTreeSet<PathBuf> = self
            .files
            .paths()
            .map(|p| match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            })
            .collect();
        let options = WatchOptions {
            debounce: DEBOUNCE,
            resync: self.files.reload_interval,
            ..WatchOptions::default()
        };
        dirs.into_iter()
            .map(|dir| {
                let watched = TlsDir {
                    dir,
                    tls: Arc::clone(self),
                };
                gateway_adapter_file_config::watch(Arc::new(watched), options)
            })
            .collect()
    }
}

/// One directory of the TLS files, watched: any change there re-reads them all (an unchanged
/// content is not judged again).
struct TlsDir {
    dir: PathBuf,
    tls: Arc<Tls>,
}

#[async_trait::async_trait]
impl Watched for TlsDir {
    fn watched_dir(&self) -> &Path {
        &self.dir
    }

    async fn reread(self: Arc<Self>) {
        let tls = Arc::clone(&self.tls);
        // File reads and parsing: off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
    }
}

/// The files' bytes (certificate, key, client CA).
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// Reads every file; the digest covers what was read, failures included, so the same broken
/// state is recognised.
fn read(files: &TlsFiles) -> (Result<Contents, TlsError>, [u8; 32]) {
    let mut digest = Sha256::new();
    let mut one = |path: &Path| {
        let read = std::fs::read(path);
        match &read {
            Ok(bytes) => {
                digest.update(b"ok");
                digest.update((bytes.len() as u64).to_le_bytes());
                digest.update(bytes);
            }
            Err(e) => digest.update(format!("error {:?}", e.kind())),
        }
        read.map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert = one(&files.cert);
    let key = one(&files.key);
    let client_ca = files.client_ca.as_deref().map(&mut one).transpose();
    let contents = (|| {
        Ok(Contents {
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
        })
    })();
    (contents, digest.finalize().into())
}

/// The server configuration the files' contents describe, if they are valid.
fn build(files: &TlsFiles, contents: &Contents) -> Result<Loaded, TlsError> {
    let provider = provider();
    let pem = |path: &Path, what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let chain = CertificateDer::pem_slice_iter(&contents.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&files.cert, format!("invalid certificate PEM: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| pem(&files.cert, "no CERTIFICATE block".into()))?;
    let certificate = x509::describe(leaf).map_err(|e| pem(&files.cert, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|e| pem(&files.key, format!("no usable private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| pem(&files.key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    // Strict: a key whose public half cannot be compared is not served either.
    certified
        .keys_match()
        .map_err(|reason| TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason,
        })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| pem(path, format!("invalid CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| pem(path, format!("unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(pem(path, "no CERTIFICATE block".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(format!("client CA {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    // hyper serves HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        certificate,
    })
}

/// Logs the certificate now served (an error when it is outside its validity) and sets the
/// expiry gauge.
fn announce(certificate: &Described, files: &TlsFiles, metrics: &Metrics, message: &str) {
    metrics.tls_certificate_expiry(certificate.not_after);
    let now = i64::try_from(SystemClock.now().as_secs()).unwrap_or(i64::MAX);
    let not_after = rfc3339(certificate.not_after);
    let not_before = rfc3339(certificate.not_before);
    tracing::info!(
        subject = %certificate.subject,
        serial = %certificate.serial,
        %not_before,
        %not_after,
        cert = %files.cert.display(),
        client_ca = ?files.client_ca.as_ref().map(|p| p.display().to_string()),
        "{message}"
    );
    if now > certificate.not_after {
        tracing::error!(subject = %certificate.subject, %not_after, "the TLS certificate has expired: served anyway until it is rotated; clients that check it refuse it");
    } else if now < certificate.not_before {
        tracing::error!(subject = %certificate.subject, %not_before, "the TLS certificate is not valid yet: served anyway; clients that check it refuse it");
    }
}

fn rfc3339(unix: i64) -> String {
    u64::try_from(unix)
        .map(|secs| gateway_ports::Timestamp::from_secs(secs).to_rfc3339())
        .unwrap_or_else(|_| format!("{unix} (before 1970)"))
}
