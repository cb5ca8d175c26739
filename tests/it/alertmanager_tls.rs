//! The real Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `scripts/test-tools.sh`) delivers to the gateway over TLS, presenting a client certificate
//! and a bearer token — the `webhook_configs` / `http_config` a deployment writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gateway_tests::alertmanager::{self, Alertmanager};
use gateway_tests::certs::{Ca, Validity};
use gateway_tests::served::ServedGateway;
use serde_json::json;

/// The gateway's flags, in one place: TLS with client certificates, and the bearer tokens of
/// `<secret>/tokens`.
fn gateway_flags(config: &Path, out: &Path, secret: &Path) -> Vec<String> {
    let path = |p: PathBuf| p.to_str().unwrap().to_owned();
    vec![
        "--config-dir".into(),
        path(config.to_owned()),
        "--remediation-dir".into(),
        path(out.to_owned()),
        "--tls-cert-file".into(),
        path(secret.join("tls.crt")),
        "--tls-key-file".into(),
        path(secret.join("tls.key")),
        "--tls-client-ca-file".into(),
        path(secret.join("ca.crt")),
        "--auth".into(),
        "token".into(),
        "--auth-token-file".into(),
        path(secret.join("tokens")),
    ]
}

fn remediation_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".yaml") && !name.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_alertmanager_delivers_over_tls_with_a_client_certificate_and_a_token() {
    let binary = alertmanager::binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (config, out, secret, client_dir, storage) = (
        dir("config"),
        dir("remediations"),
        dir("secret"),
        dir("alertmanager-client"),
        dir("alertmanager-data"),
    );

    // The gateway's Secret (its certificate, the CA its clients' certificates come from) and
    // Alertmanager's (its client certificate, the CA of the gateway's, the token).
    let server_ca = Ca::new("gateway CA");
    let client_ca = Ca::new("senders CA");
    let server = server_ca.server("kubernaut-gateway", 1, Validity::Current);
    let client = client_ca.client("alertmanager", Validity::Current);
    std::fs::write(secret.join("tls.crt"), server.cert_pem()).unwrap();
    std::fs::write(secret.join("tls.key"), server.key_pem()).unwrap();
    std::fs::write(secret.join("ca.crt"), client_ca.cert_pem()).unwrap();
    std::fs::write(client_dir.join("ca.crt"), server_ca.cert_pem()).unwrap();
    std::fs::write(client_dir.join("tls.crt"), client.cert_pem()).unwrap();
    std::fs::write(client_dir.join("tls.key"), client.key_pem()).unwrap();
    let token_file = client_dir.join("token");
    std::fs::write(&token_file, "alertmanager-test-token\n").unwrap();
    // The gateway's side of the same token (its Secret names the sender).
    std::fs::write(
        secret.join("tokens"),
        "alertmanager:alertmanager-test-token\n",
    )
    .unwrap();

    let flags = gateway_flags(&config, &out, &secret);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let served = ServedGateway::start(&flags, None).await;

    let am_config = tmp.path().join("alertmanager.yml");
    let am = json!({
        "route": {
            "receiver": "kubernaut",
            "group_by": ["alertname", "namespace"],
            "group_wait": "500ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "kubernaut",
            "webhook_configs": [{
                "url": served.prometheus_url(),
                "send_resolved": true,
                "max_alerts": 100,
                "http_config": {
                    "authorization": {
                        "type": "Bearer",
                        "credentials_file": token_file,
                    },
                    "tls_config": {
                        "ca_file": client_dir.join("ca.crt"),
                        "cert_file": client_dir.join("tls.crt"),
                        "key_file": client_dir.join("tls.key"),
                    },
                },
            }],
        }],
    });
    // YAML is a superset of JSON.
    std::fs::write(&am_config, serde_json::to_string_pretty(&am).unwrap()).unwrap();
    let check = Command::new(&binary).arg("--version").output().unwrap();
    assert!(check.status.success(), "{binary:?} --version fails");

    let alertmanager = Alertmanager::start(&am_config, &storage, tmp.path().join("am.log"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    alertmanager.wait_ready(&http).await;

    let alerts: Vec<_> = ["api-1", "api-2", "db-0"]
        .iter()
        .map(|pod| {
            json!({
                "labels": {
                    "alertname": "PodCrashLooping",
                    "namespace": "shop",
                    "pod": pod,
                    "severity": "critical",
                },
                "annotations": { "summary": format!("{pod} restarts") },
            })
        })
        .collect();
    let posted = http
        .post(format!("{}/api/v2/alerts", alertmanager.base))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while remediation_files(&out) < alerts.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} RemediationRequests after 30 s; Alertmanager said:\n{}",
            remediation_files(&out),
            alerts.len(),
            alertmanager.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sent, failed) = alertmanager.webhook_notifications(&http).await;
    assert!(sent >= 1.0, "notifications sent: {sent}");
    assert_eq!(failed, 0.0, "{}", alertmanager.log());
    let gateway_metrics = served.gateway.metrics().render();
    for line in gateway_metrics
        .lines()
        .filter(|l| l.starts_with("gateway_tls_handshake_failures_total"))
    {
        assert!(line.ends_with(" 0"), "{line}");
    }
    // The token was checked, and every delivery passed it.
    assert!(
        gateway_metrics.contains("gateway_auth_mode{mode=\"token\"} 1"),
        "{gateway_metrics}"
    );
    for line in gateway_metrics
        .lines()
        .filter(|l| l.starts_with("gateway_auth_failures_total"))
    {
        assert!(line.ends_with(" 0"), "{line}");
    }
    drop(alertmanager);
    served.stop().await;
}
