//! HTTPS: certificates made in the test, served from a Secret-like volume updated the kubelet's
//! way; rotation without a restart or a failed handshake, a half-written rotation refused,
//! client certificates (mTLS), an expired certificate — each with its status and its metric.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use gateway::cli::Cli;
use gateway_tests::SAMPLE_WEBHOOK;
use gateway_tests::certs::{self, Ca, EXPIRED_NOT_AFTER, Issued, Validity};
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::served::ServedGateway;
use tokio::io::AsyncReadExt;

/// `notAfter` of a certificate valid by rcgen's defaults: 4096-01-01T00:00:00Z.
const CURRENT_NOT_AFTER: i64 = 67_090_118_400;

/// A gateway's directories: its config, its RemediationRequests, its TLS Secret volume.
struct Dirs {
    config: tempfile::TempDir,
    out: tempfile::TempDir,
    _mount: tempfile::TempDir,
    secret: KubeletDir,
}

impl Dirs {
    /// A Secret volume holding `tls.crt`, `tls.key` (of `server`) and `ca.crt`.
    fn new(server: &Issued, ca_crt: &str) -> Dirs {
        let mount = tempfile::tempdir().unwrap();
        let secret = KubeletDir::create(
            mount.path().join("tls"),
            &[
                ("tls.crt", &server.cert_pem()),
                ("tls.key", &server.key_pem()),
                ("ca.crt", ca_crt),
            ],
        )
        .unwrap();
        Dirs {
            config: tempfile::tempdir().unwrap(),
            out: tempfile::tempdir().unwrap(),
            _mount: mount,
            secret,
        }
    }

    /// The Secret now holds this certificate and key (one kubelet sync).
    fn rotate(&self, cert: &Issued, key: &Issued, ca_crt: &str) {
        self.secret
            .swap(&[
                ("tls.crt", &cert.cert_pem()),
                ("tls.key", &key.key_pem()),
                ("ca.crt", ca_crt),
            ])
            .unwrap();
    }

    fn flags(&self, client_certificates: bool) -> Vec<String> {
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let mut flags = vec![
            "--config-dir".into(),
            path(self.config.path()),
            "--remediation-dir".into(),
            path(self.out.path()),
            "--header-read-timeout".into(),
            "1s".into(),
            "--tls-cert-file".into(),
            path(&self.secret.file("tls.crt")),
            "--tls-key-file".into(),
            path(&self.secret.file("tls.key")),
        ];
        if client_certificates {
            flags.extend([
                "--tls-client-ca-file".into(),
                path(&self.secret.file("ca.crt")),
            ]);
        }
        flags
    }

    async fn start(&self, client_certificates: bool) -> anyhow::Result<ServedGateway> {
        let flags = self.flags(client_certificates);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServedGateway::try_start(&flags, None).await
    }
}

/// The value of the series `series` (name and labels, exactly as rendered), 0 when absent.
fn metric(served: &ServedGateway, series: &str) -> f64 {
    let text = served.gateway.metrics().render();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn handshake_failures(served: &ServedGateway, reason: &str) -> f64 {
    metric(
        served,
        &format!("gateway_tls_handshake_failures_total{{reason=\"{reason}\"}}"),
    )
}

fn reloads(served: &ServedGateway, result: &str) -> f64 {
    metric(
        served,
        &format!("gateway_tls_reloads_total{{result=\"{result}\"}}"),
    )
}

/// Waits (at most `within`) until `done` holds.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The certificate a new connection is served (a successful GET /healthz), or why not.
async fn served_certificate(client: &reqwest::Client, base: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    certs::peer_certificate(&response).ok_or_else(|| "no peer certificate".to_owned())
}

async fn post_webhook(client: &reqwest::Client, served: &ServedGateway) -> reqwest::StatusCode {
    client
        .post(served.prometheus_url())
        .header("content-type", "application/json")
        .body(SAMPLE_WEBHOOK)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_and_plain_http_or_a_stalled_handshake_fails_cleanly() {
    let ca = Ca::new("test CA");
    let server = ca.server("gateway-1", 1, Validity::Current);
    let dirs = Dirs::new(&server, &ca.cert_pem());
    let served = dirs.start(false).await.unwrap();
    assert!(served.base.starts_with("https://"), "{}", served.base);
    let client = certs::client(&ca, None);

    assert_eq!(
        served_certificate(&client, &served.base).await.unwrap(),
        server.der().to_vec()
    );
    assert!(post_webhook(&client, &served).await.is_success());
    assert_eq!(
        metric(&served, "gateway_tls_certificate_expiry_seconds"),
        CURRENT_NOT_AFTER as f64
    );

    // Plain HTTP on the TLS port: refused, and nothing else is disturbed.
    let plain = served.base.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        answer.as_ref().is_err() || !answer.as_ref().unwrap().status().is_success(),
        "{answer:?}"
    );
    eventually(Duration::from_secs(2), "protocol failure counted", || {
        handshake_failures(&served, "protocol") == 1.0
    })
    .await;

    // A client that opens a connection and never says anything is closed after the header-read
    // timeout (1 s), like a slow loris on plain HTTP.
    let addr = served.base.trim_start_matches("https://");
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut [0u8; 16]))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(handshake_failures(&served, "timeout"), 1.0);

    assert_eq!(
        served_certificate(&client, &served.base).await.unwrap(),
        server.der().to_vec()
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_reaches_new_connections_without_one_failed_handshake() {
    let ca = Ca::new("test CA");
    let first = ca.server("gateway-1", 1, Validity::Current);
    let second = ca.server("gateway-2", 2, Validity::Current);
    let third = ca.server("gateway-3", 3, Validity::Current);
    let dirs = Dirs::new(&first, &ca.cert_pem());
    let served = dirs.start(false).await.unwrap();

    // Two clients open a new connection for every request, all through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let latest = Arc::new(Mutex::new(Vec::<u8>::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let hammers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failures, latest, requests) = (
                stop.clone(),
                failures.clone(),
                latest.clone(),
                requests.clone(),
            );
            let client = certs::client(&ca, None);
            let base = served.base.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match served_certificate(&client, &base).await {
                        Ok(cert) => *latest.lock().unwrap() = cert,
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let sees = |cert: &Issued| {
        let expected = cert.der().to_vec();
        let latest = latest.clone();
        move || *latest.lock().unwrap() == expected
    };
    eventually(
        Duration::from_secs(2),
        "the first certificate",
        sees(&first),
    )
    .await;
    let before = requests.load(Ordering::Relaxed);

    dirs.rotate(&second, &second, &ca.cert_pem());
    eventually(
        Duration::from_secs(3),
        "new connections get the rotated certificate",
        sees(&second),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for hammer in hammers {
        hammer.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        requests.load(Ordering::Relaxed) > before + 10,
        "the clients kept connecting through the rotation"
    );
    assert_eq!(reloads(&served, "success"), 1.0);
    assert_eq!(reloads(&served, "error"), 0.0);
    let text = served.gateway.metrics().render();
    for line in text
        .lines()
        .filter(|l| l.starts_with("gateway_tls_handshake_failures_total"))
    {
        assert!(line.ends_with(" 0"), "{line}");
    }

    // Half a rotation: the new certificate with the old key. The pair in force stays, the error
    // is counted once, and the completed rotation is taken on its own change.
    let client = certs::client(&ca, None);
    dirs.rotate(&third, &second, &ca.cert_pem());
    eventually(Duration::from_secs(3), "the broken rotation judged", || {
        reloads(&served, "error") == 1.0
    })
    .await;
    assert_eq!(
        served_certificate(&client, &served.base).await.unwrap(),
        second.der().to_vec()
    );
    dirs.rotate(&third, &third, &ca.cert_pem());
    eventually(Duration::from_secs(3), "the completed rotation", || {
        reloads(&served, "success") == 2.0
    })
    .await;
    assert_eq!(
        served_certificate(&client, &served.base).await.unwrap(),
        third.der().to_vec()
    );
    assert_eq!(reloads(&served, "error"), 1.0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_certificates_required_only_a_valid_one_gets_in() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("another CA");
    let server = server_ca.server("gateway", 1, Validity::Current);
    let dirs = Dirs::new(&server, &client_ca.cert_pem());
    let served = dirs.start(true).await.unwrap();

    let refused = [
        (None, "client_certificate_missing", 1.0),
        (
            Some(other_ca.client("intruder", Validity::Current)),
            "client_certificate_invalid",
            1.0,
        ),
        (
            Some(client_ca.client("retired", Validity::Expired)),
            "client_certificate_invalid",
            2.0,
        ),
    ];
    for (identity, reason, count) in &refused {
        let client = certs::client(&server_ca, identity.as_ref());
        let answer = client.get(format!("{}/healthz", served.base)).send().await;
        assert!(answer.is_err(), "{reason}: {answer:?}");
        eventually(Duration::from_secs(2), reason, || {
            handshake_failures(&served, reason) == *count
        })
        .await;
    }

    let good = client_ca.client("alertmanager", Validity::Current);
    let client = certs::client(&server_ca, Some(&good));
    assert!(post_webhook(&client, &served).await.is_success());
    assert_eq!(
        handshake_failures(&served, "client_certificate_missing"),
        1.0
    );
    assert_eq!(
        handshake_failures(&served, "client_certificate_invalid"),
        2.0
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_served_refused_by_clients_and_replaced_by_a_rotation() {
    let ca = Ca::new("test CA");
    let expired = ca.server("late", 1, Validity::Expired);
    let dirs = Dirs::new(&expired, &ca.cert_pem());
    // Served: a restart would not bring a new certificate, cert-manager's rotation will.
    let served = dirs.start(false).await.unwrap();
    assert_eq!(
        metric(&served, "gateway_tls_certificate_expiry_seconds"),
        EXPIRED_NOT_AFTER as f64
    );
    let client = certs::client(&ca, None);
    let refused = served_certificate(&client, &served.base).await.unwrap_err();
    assert!(refused.contains("Expired"), "{refused}");
    eventually(Duration::from_secs(2), "the client's alert counted", || {
        handshake_failures(&served, "client_alert") == 1.0
    })
    .await;

    let renewed = ca.server("renewed", 2, Validity::Current);
    dirs.rotate(&renewed, &renewed, &ca.cert_pem());
    eventually(Duration::from_secs(3), "the renewed certificate", || {
        metric(&served, "gateway_tls_certificate_expiry_seconds") == CURRENT_NOT_AFTER as f64
    })
    .await;
    assert_eq!(
        served_certificate(&client, &served.base).await.unwrap(),
        renewed.der().to_vec()
    );
    served.stop().await;
}

#[tokio::test]
async fn a_tls_configuration_that_cannot_be_served_stops_the_start() {
    let ca = Ca::new("test CA");
    let one = ca.server("one", 1, Validity::Current);
    let other = ca.server("other", 2, Validity::Current);

    let dirs = Dirs::new(&one, &ca.cert_pem());
    dirs.rotate(&one, &other, &ca.cert_pem());
    let e = dirs
        .start(false)
        .await
        .err()
        .expect("a key of another certificate");
    assert!(format!("{e:#}").contains("does not match"), "{e:#}");

    let dirs = Dirs::new(&one, &ca.cert_pem());
    dirs.secret
        .swap(&[
            ("tls.crt", "not a certificate"),
            ("tls.key", &one.key_pem()),
            ("ca.crt", ""),
        ])
        .unwrap();
    let e = dirs.start(false).await.err().expect("no certificate");
    assert!(format!("{e:#}").contains("tls.crt"), "{e:#}");
    let e = dirs.start(true).await.err().expect("an empty client CA");
    assert!(format!("{e:#}").contains("tls.crt"), "{e:#}");

    let dirs = Dirs::new(&one, "");
    let e = dirs.start(true).await.err().expect("an empty client CA");
    assert!(format!("{e:#}").contains("ca.crt"), "{e:#}");

    let out = dirs.out.path().to_str().unwrap();
    let config = dirs.config.path().to_str().unwrap();
    let e = ServedGateway::try_start(
        &[
            "--config-dir",
            config,
            "--remediation-dir",
            out,
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--tls-key-file",
            "/nonexistent/tls.key",
        ],
        None,
    )
    .await
    .err()
    .expect("unreadable files");
    assert!(
        format!("{e:#}").contains("cannot read /nonexistent/tls.crt"),
        "{e:#}"
    );

    for (flags, expected) in [
        (&["--tls-cert-file", "c"][..], "--tls-key-file"),
        (&["--tls-key-file", "k"][..], "--tls-cert-file"),
        (&["--tls-client-ca-file", "ca"][..], "--tls-cert-file"),
        (
            &[
                "--tls-cert-file",
                "c",
                "--tls-key-file",
                "k",
                "--tls-reload-interval",
                "0s",
            ][..],
            "--tls-reload-interval",
        ),
    ] {
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(flags);
        let args = Cli::try_parse_from(argv).unwrap().serve;
        let e = gateway::tls::TlsFiles::of(&args).unwrap_err();
        assert!(e.to_string().contains(expected), "{flags:?}: {e}");
    }
}
