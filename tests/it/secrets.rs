//! No secret shown anywhere: the real binary, given known secrets in every way it accepts them,
//! through a scenario that makes it talk about them — Redis with a password, a back end that
//! fails, bad requests, a reload — and every byte it printed or served is searched for them.
//!
//! The flags come from one function ([`gateway_flags`]) and the secrets from one array
//! ([`SECRETS`]), so that a new way of giving a secret (an auth token file) is one more flag and
//! one more entry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_tests::chaos::process::{free_port, gateway_binary};
use gateway_tests::redis::TestRedis;

/// The Redis password: `requirepass`, and what every form below gives the gateway.
const REDIS_PASSWORD: &str = "Redis-pa55word-6f1d2c";

/// Every secret the gateway is given; none may appear in anything it prints or serves.
const SECRETS: [&str; 3] = [REDIS_PASSWORD, AUTH_TOKEN, WRONG_TOKEN];

/// The bearer token the gateway accepts (`--auth token`), sent with every request of the run.
const AUTH_TOKEN: &str = "Auth-t0ken-9b3e7a51c2d4";

/// A bearer token the gateway does not know: refused, and never echoed either.
const WRONG_TOKEN: &str = "Wrong-t0ken-4c8d1e0f7a62";

/// How the Redis password reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `redis://:PW@host:port`.
    UserInfo,
    /// `redis://default:PW@host:port`.
    UserAndPassword,
    /// `--redis-password-file`.
    File,
    /// `redis://host:port?password=PW`: not a form the client reads for TCP, so Redis refuses
    /// every command (`NOAUTH`) — a failing back end with the secret in its URL.
    PasswordParameter,
    /// `redis://host:port/0?pass=PW`: likewise.
    PassParameter,
    /// `redis+unix:///no/such.sock?pass=PW`: the Unix form, to a socket that is not there.
    UnixPass,
}

impl Form {
    /// Whether Redis accepts the password given this way (the gateway becomes ready).
    fn authenticates(self) -> bool {
        matches!(self, Form::UserInfo | Form::UserAndPassword | Form::File)
    }
}

/// The gateway's flags for one run (the listener and the log format apart).
fn gateway_flags(form: Form, redis: &TestRedis, dir: &Path) -> Vec<String> {
    let host_port = redis.url.trim_start_matches("redis://");
    let pw = REDIS_PASSWORD;
    let url = match form {
        Form::UserInfo => format!("redis://:{pw}@{host_port}"),
        Form::UserAndPassword => format!("redis://default:{pw}@{host_port}/0"),
        Form::File => redis.url.clone(),
        Form::PasswordParameter => format!("redis://{host_port}?password={pw}"),
        Form::PassParameter => format!("redis://{host_port}/0?db=0&pass={pw}"),
        Form::UnixPass => format!("redis+unix:///no/such/redis.sock?pass={pw}"),
    };
    let mut flags: Vec<String> = [
        "--config-dir",
        &dir.join("config").to_string_lossy(),
        "--remediation-dir",
        &dir.join("out").to_string_lossy(),
        "--redis-url",
        &url,
        "--redis-timeout",
        "200ms",
        "--shutdown-delay",
        "0s",
        "--write-deadline",
        "2s",
        "--request-timeout",
        "3s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("# senders\nalertmanager:{AUTH_TOKEN}\n")).unwrap();
    flags.extend([
        "--auth".to_owned(),
        "token".to_owned(),
        "--auth-token-file".to_owned(),
        tokens.display().to_string(),
    ]);
    if form == Form::File {
        let file = dir.join("redis-password");
        std::fs::write(&file, format!("{pw}\n")).unwrap();
        flags.extend([
            "--redis-password-file".to_owned(),
            file.display().to_string(),
        ]);
    }
    flags
}

/// Each secret as it could be leaked: raw, base64 (as in a basic-auth header), URL-encoded,
/// JSON-escaped.
fn leak_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        base64(secret.as_bytes()),
        base64(format!(":{secret}").as_bytes()),
        base64(format!("default:{secret}").as_bytes()),
        url_encoded(secret),
    ];
    let json = serde_json::to_string(secret).unwrap();
    forms.push(json[1..json.len() - 1].to_owned());
    forms.sort();
    forms.dedup();
    forms
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    // Unpadded: a padded encoding contains it.
    out
}

fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The gateway process of one run, its output in two files.
struct Run {
    child: Child,
    base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Run {
    fn start(flags: &[String], log_format: &str, dir: &Path) -> Run {
        let port = free_port();
        let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
        let child = Command::new(gateway_binary())
            .args(flags)
            .args(["--log-format", log_format])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "debug,hyper=info,h2=info,tower=info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Run {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
        }
    }

    fn log_tail(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `path` answers `status`; panics with the log after `within`.
    async fn wait_for(&mut self, client: &reqwest::Client, path: &str, status: u16) {
        let started = Instant::now();
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the gateway exited ({exit}):\n{}", self.log_tail());
            }
            let got = client
                .get(format!("{}{path}", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if got.as_ref().is_ok_and(|s| *s == status) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{path} did not answer {status} (last {got:?}):\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the exit.
    async fn stop(mut self) -> (Vec<u8>, Vec<u8>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (
            std::fs::read(&self.stdout).unwrap(),
            std::fs::read(&self.stderr).unwrap(),
        )
    }
}

/// Everything one request was answered: status line, headers and body.
async fn exchange(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut text = format!("{status}\n");
    for (name, value) in response.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(&response.text().await.unwrap_or_default());
    (status, text)
}

fn webhook(alertname: &str) -> String {
    serde_json::json!({
        "version": "4",
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": alertname, "namespace": "prod", "pod": "api-1", "severity": "critical" },
            "startsAt": "2026-01-01T00:00:00Z",
        }],
    })
    .to_string()
}

/// The requests of the scenario: everything the gateway answers while healthy or not.
async fn scenario(run: &Run, client: &reqwest::Client, dir: &Path, served: &mut Vec<String>) {
    let base = &run.base;
    let post = |path: &str, body: String| {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
    };
    let requests = [
        post("/api/v1/signals/prometheus", webhook("SecretsProbe")),
        // A name that would forge a log line if written raw.
        post(
            "/api/v1/signals/prometheus",
            webhook("Probe\nFORGED ERROR line\r\u{1b}[31m"),
        ),
        post(
            "/api/v1/signals/prometheus",
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A","a":"1","a":"2"}}]}"#
                .to_owned(),
        ),
        post("/api/v1/signals/prometheus", "{not json".to_owned()),
        client
            .post(format!("{base}/api/v1/signals/prometheus"))
            .header("content-type", "text/plain")
            .body("x"),
        client.get(format!("{base}/no/such/path")),
        client.delete(format!("{base}/config")),
        client.get(format!("{base}/readyz")),
        client.get(format!("{base}/healthz")),
        client.get(format!("{base}/config")),
        client.get(format!("{base}/metrics")),
        client.get(format!("{base}/debug/dead-letters")),
        // Refused callers: a token the gateway does not know, and none at all.
        post("/api/v1/signals/prometheus", webhook("WrongToken"))
            .header("authorization", format!("Bearer {WRONG_TOKEN}")),
        client
            .get(format!("{base}/config"))
            .header("authorization", format!("Bearer {WRONG_TOKEN}")),
        reqwest::Client::new()
            .post(format!("{base}/api/v1/signals/prometheus"))
            .header("content-type", "application/json")
            .body(webhook("NoToken")),
    ];
    for request in requests {
        served.push(exchange(request).await.1);
    }
    // A rejected reload, then a good one.
    let storm = dir.join("config/storm.yaml");
    std::fs::write(&storm, "rate_threshold: [not a number\n").unwrap();
    served.push(exchange(client.post(format!("{base}/-/reload"))).await.1);
    std::fs::write(&storm, "rate_threshold: 12\n").unwrap();
    served.push(exchange(client.post(format!("{base}/-/reload"))).await.1);
}

/// A client whose every request carries [`AUTH_TOKEN`], unless the request says otherwise.
fn authorized_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {AUTH_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn assert_nothing_leaked(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in SECRETS {
        for form in leak_forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} shows a secret ({form:?}):\n{}",
                text.lines()
                    .filter(|l| l.contains(&form))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_served_whatever_form_it_was_given_in() {
    let redis = TestRedis::start_with_password(REDIS_PASSWORD).await;
    let client = authorized_client();
    let forms = [
        Form::UserInfo,
        Form::UserAndPassword,
        Form::File,
        Form::PasswordParameter,
        Form::PassParameter,
        Form::UnixPass,
    ];
    for form in forms {
        for log_format in ["text", "json"] {
            let what = format!("{form:?}, {log_format} logs");
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("config")).unwrap();
            std::fs::write(dir.path().join("config/storm.yaml"), "rate_threshold: 10\n").unwrap();
            let flags = gateway_flags(form, &redis, dir.path());
            let mut run = Run::start(&flags, log_format, dir.path());
            run.wait_for(&client, "/healthz", 200).await;
            let mut served = Vec::new();
            if form.authenticates() {
                // The password did reach Redis: the run proves something.
                run.wait_for(&client, "/readyz", 200).await;
                scenario(&run, &client, dir.path(), &mut served).await;
                // The back end fails under the gateway.
                redis.stop().await;
                run.wait_for(&client, "/readyz", 503).await;
            } else {
                run.wait_for(&client, "/readyz", 503).await;
            }
            scenario(&run, &client, dir.path(), &mut served).await;
            let (status, readyz) = exchange(client.get(format!("{}/readyz", run.base))).await;
            assert_eq!(status, 503, "{what}: {readyz}");
            assert!(
                readyz.contains("dedup store unavailable"),
                "{what}: {readyz}"
            );
            served.push(readyz);
            let (status, answer) = exchange(
                client
                    .post(format!("{}/api/v1/signals/prometheus", run.base))
                    .header("content-type", "application/json")
                    .body(webhook("DuringOutage")),
            )
            .await;
            assert_eq!(status, 503, "{what}: {answer}");
            served.push(answer);
            let (stdout, stderr) = run.stop().await;
            if form.authenticates() {
                redis.start_again().await;
            }

            assert!(!stderr.is_empty(), "{what}: the gateway logged nothing");
            assert_nothing_leaked(&format!("{what}: stdout"), &stdout);
            assert_nothing_leaked(&format!("{what}: stderr"), &stderr);
            for (i, answer) in served.iter().enumerate() {
                assert_nothing_leaked(&format!("{what}: answer {i}"), answer.as_bytes());
            }
            // One record per line: no line was started by a value from a request.
            let log = String::from_utf8_lossy(&stderr);
            for line in log.lines() {
                let record = match log_format {
                    "json" => line.starts_with('{'),
                    _ => line.starts_with(|c: char| c.is_ascii_digit()),
                };
                assert!(record, "{what}: a log line that is no record: {line:?}");
                assert!(!line.contains('\u{1b}'), "{what}: {line:?}");
            }
        }
    }
}

#[test]
fn the_leak_forms_include_base64_and_url_encoding() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE");
    assert_eq!(url_encoded("a b/c"), "a%20b%2Fc");
    assert!(leak_forms("p\"w").contains(&"p\\\"w".to_owned()));
}

/// The bearer token of the kubeconfig (`--kubeconfig`): a Kubernetes sink whose API server
/// fails every write, its errors logged in both formats, never shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeconfig_token_is_never_printed_or_served() {
    use gateway_tests::apiserver::{ApiServer, Fault, Filter};
    const KUBE_TOKEN: &str = "Kube-t0ken-e41f09b7c3a8";
    let api = ApiServer::start().await;
    api.faults().set_rate(
        1.0,
        vec![Fault::Status(500)],
        Filter::resource("remediationrequests"),
        11,
    );
    let client = authorized_client();
    for log_format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        let written = std::fs::read_to_string(&kubeconfig).unwrap();
        let with_token = written.replace("user: {}", &format!("user:\n    token: {KUBE_TOKEN}"));
        assert_ne!(written, with_token, "the kubeconfig's user: {written}");
        std::fs::write(&kubeconfig, with_token).unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("sender:{AUTH_TOKEN}\n")).unwrap();
        let flags: Vec<String> = [
            "--sink",
            "kubernetes",
            "--kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--config-dir",
            &dir.path().join("config").to_string_lossy(),
            "--state",
            "memory",
            "--shutdown-delay",
            "0s",
            "--write-deadline",
            "1s",
            "--request-timeout",
            "3s",
            "--auth",
            "token",
            "--auth-token-file",
            &tokens.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut run = Run::start(&flags, log_format, dir.path());
        run.wait_for(&client, "/healthz", 200).await;
        let mut served = Vec::new();
        for alert in ["KubeDown", "KubeDownAgain"] {
            let (status, body) = exchange(
                client
                    .post(format!("{}/api/v1/signals/prometheus", run.base))
                    .header("content-type", "application/json")
                    .body(webhook(alert)),
            )
            .await;
            assert_eq!(status, 503, "every write fails: {body}");
            served.push(body);
        }
        served.push(exchange(client.get(format!("{}/readyz", run.base))).await.1);
        served.push(exchange(client.get(format!("{}/config", run.base))).await.1);
        served.push(
            exchange(client.get(format!("{}/metrics", run.base)))
                .await
                .1,
        );
        let (stdout, stderr) = run.stop().await;
        let what = format!("kubeconfig token, {log_format} logs");
        assert!(!stderr.is_empty(), "{what}: the gateway logged nothing");
        for (part, bytes) in [("stdout", &stdout), ("stderr", &stderr)] {
            let text = String::from_utf8_lossy(bytes);
            for form in leak_forms(KUBE_TOKEN) {
                assert!(!text.contains(&form), "{what}: {part} shows the token");
            }
        }
        for body in &served {
            for form in leak_forms(KUBE_TOKEN) {
                assert!(!body.contains(&form), "{what}: an answer shows the token");
            }
        }
    }
}
