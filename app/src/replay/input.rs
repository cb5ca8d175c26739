//! Recorded signals read from files: what each document is, and when it was received.
//!
//! A file holds JSON documents one after another (JSON lines, or one pretty-printed document);
//! a directory holds `*.json` files, read in name order (other files are skipped). Each document
//! is recognised by its shape:
//! - `{"received_at": RFC3339, "body": {...}}`: a wrapper; the body (a webhook or an Event) was
//!   received at `received_at` (its body is re-encoded from the parsed JSON, so a key repeated
//!   inside it, which the server refuses, is not noticed: the last one counts);
//! - an object with `alerts`: an Alertmanager webhook, received at the latest of its alerts'
//!   `startsAt`, and `endsAt` for a resolved alert;
//! - an object with `involvedObject` (or `kind: Event`): a core/v1 Event, received at its
//!   `lastTimestamp`, else `eventTime`, else `firstTimestamp`;
//! - an array: Alertmanager's `GET /api/v2/alerts` answer; each alert becomes a webhook of one
//!   firing alert received at its `startsAt`.
//!
//! Zero times (Go's `0001-01-01T00:00:00Z`, the Unix epoch) count as absent. Every body is
//! checked by the gateway's own parser (`gateway-signal`) here, so a bad one stops the replay
//! before anything runs, named by file and line.

use std::fmt;
use std::path::{Path, PathBuf};

use gateway_ports::Timestamp;
use serde_json::{Map, Value};

use crate::gateway::Payload;

/// One recorded request body.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What the body is.
    pub payload: Payload,
    /// The body, as the gateway would have received it.
    pub body: Vec<u8>,
    /// When it was received.
    pub at: Timestamp,
}

/// A document that cannot be replayed: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BadInput {
    /// The file.
    pub file: String,
    /// The line the document starts on (1-based; the error's own line for malformed JSON); 0
    /// for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Every document of `paths` (files or directories), in the order given; not yet sorted by time.
///
/// # Errors
/// The first document (or path) that cannot be replayed.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Recorded>, BadInput> {
    let mut recorded = Vec::new();
    for path in paths {
        for file in files_of(path)? {
            let bytes = std::fs::read(&file).map_err(|e| BadInput {
                file: file.display().to_string(),
                line: 0,
                reason: format!("cannot read: {e}"),
            })?;
            recorded.extend(documents(&file.display().to_string(), &bytes)?);
        }
    }
    Ok(recorded)
}

/// `path` itself, or a directory's `*.json` files in name order.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, BadInput> {
    let cannot = |e: std::io::Error| BadInput {
        file: path.display().to_string(),
        line: 0,
        reason: format!("cannot read: {e}"),
    };
    if !path.is_dir() {
        // A missing file is reported by the read, with the operating system's words.
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(cannot)? {
        let entry = entry.map_err(cannot)?.path();
        if entry.extension().is_some_and(|e| e == "json") && entry.is_file() {
            files.push(entry);
        }
    }
    files.sort();
    Ok(files)
}

/// The documents of one file's bytes, each checked and timed.
///
/// # Errors
/// The first document that is malformed, of no known shape, without a time, or refused by the
/// gateway's parser.
pub fn documents(file: &str, bytes: &[u8]) -> Result<Vec<Recorded>, BadInput> {
    let mut recorded = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut end = 0;
    loop {
        let start = end
            + bytes[end..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        let line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count();
        let document = match stream.next() {
            None => break,
            Some(Ok(document)) => document,
            Some(Err(e)) => {
                return Err(BadInput {
                    file: file.to_owned(),
                    // A document cut short is named where it starts, not at the file's end.
                    line: if e.is_eof() { line } else { e.line().max(line) },
                    reason: format!("malformed JSON: {e}"),
                });
            }
        };
        end = stream.byte_offset();
        let bad = |reason: String| BadInput {
            file: file.to_owned(),
            line,
            reason,
        };
        recorded.extend(recognise(document, &bytes[start..end]).map_err(bad)?);
    }
    Ok(recorded)
}

/// One document → the bodies it carries.
fn recognise(document: Value, raw: &[u8]) -> Result<Vec<Recorded>, String> {
    match document {
        Value::Array(alerts) => alerts
            .into_iter()
            .enumerate()
            .map(|(i, alert)| api_alert(alert).map_err(|e| format!("[{i}]{e}")))
            .collect(),
        Value::Object(object) if object.contains_key("received_at") => {
            let at = match object.get("received_at") {
                Some(Value::String(s)) => {
                    usable(s).ok_or_else(|| format!(".received_at: not an RFC 3339 time: {s:?}"))?
                }
                _ => return Err(".received_at: must be an RFC 3339 string".to_owned()),
            };
            let Some(Value::Object(body)) = object.get("body") else {
                return Err(".body: missing or not an object (a wrapper is {\"received_at\": TIME, \"body\": {...}})".to_owned());
            };
            let payload = shape(body).map_err(|e| format!(".body: {e}"))?;
            let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
            Ok(vec![
                checked(payload, body, at).map_err(|e| format!(".body.{e}"))?,
            ])
        }
        Value::Object(object) => {
            let payload = shape(&object)?;
            let at = match payload {
                Payload::Alertmanager => webhook_time(&object)?,
                Payload::KubernetesEvent => event_time(&object)?,
            };
            Ok(vec![checked(payload, raw.to_vec(), at)?])
        }
        _ => Err(not_known()),
    }
}

fn not_known() -> String {
    "not a replayable document: expected an Alertmanager webhook (with `alerts`), a core/v1 \
     Event (with `involvedObject`), a wrapper {\"received_at\": TIME, \"body\": {...}}, or an \
     array of alerts from GET /api/v2/alerts"
        .to_owned()
}

/// What an object is: a webhook or an Event.
fn shape(object: &Map<String, Value>) -> Result<Payload, String> {
    if object.contains_key("alerts") {
        Ok(Payload::Alertmanager)
    } else if object.contains_key("involvedObject")
        || object.get("kind").and_then(Value::as_str) == Some("Event")
    {
        Ok(Payload::KubernetesEvent)
    } else {
        Err(not_known())
    }
}

/// The body as the gateway's parser sees it: refused here, it would be refused by the server.
fn checked(payload: Payload, body: Vec<u8>, at: Timestamp) -> Result<Recorded, String> {
    let parsed = match payload {
        Payload::Alertmanager => gateway_signal::parse_alertmanager(&body, at).map(drop),
        Payload::KubernetesEvent => gateway_signal::parse_kubernetes_event(&body, at).map(drop),
    };
    parsed.map_err(|e| e.to_string())?;
    Ok(Recorded { payload, body, at })
}

/// An RFC 3339 time that is not a zero time.
fn usable(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text).filter(|t| *t > Timestamp::EPOCH)
}

fn time_at(object: &Map<String, Value>, key: &str) -> Option<Timestamp> {
    object.get(key).and_then(Value::as_str).and_then(usable)
}

/// The latest `startsAt` of a webhook's alerts (`endsAt` too for a resolved one).
fn webhook_time(webhook: &Map<String, Value>) -> Result<Timestamp, String> {
    let alerts = webhook.get("alerts").and_then(Value::as_array);
    alerts
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|alert| {
            let resolved = alert.get("status").and_then(Value::as_str) == Some("resolved");
            [
                time_at(alert, "startsAt"),
                time_at(alert, "endsAt").filter(|_| resolved),
            ]
        })
        .flatten()
        .max()
        .ok_or_else(|| {
            "no time: no alert has a usable startsAt (or endsAt when resolved); record it as \
             {\"received_at\": TIME, \"body\": {...}}"
                .to_owned()
        })
}

/// An Event's `lastTimestamp`, else `eventTime`, else `firstTimestamp`.
fn event_time(event: &Map<String, Value>) -> Result<Timestamp, String> {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|key| time_at(event, key))
        .ok_or_else(|| {
            "no time: the Event has no usable lastTimestamp, eventTime or firstTimestamp; record \
             it as {\"received_at\": TIME, \"body\": {...}}"
                .to_owned()
        })
}

/// One alert of `GET /api/v2/alerts` as the webhook Alertmanager would send for it, firing,
/// received at its `startsAt`.
fn api_alert(alert: Value) -> Result<Recorded, String> {
    let Value::Object(alert) = alert else {
        return Err(": not an alert object".to_owned());
    };
    let at = match alert.get("startsAt").and_then(Value::as_str) {
        Some(s) => usable(s).ok_or_else(|| format!(".startsAt: not an RFC 3339 time: {s:?}"))?,
        None => return Err(".startsAt: missing".to_owned()),
    };
    let mut converted = Map::new();
    converted.insert("status".to_owned(), Value::from("firing"));
    for key in [
        "labels",
        "annotations",
        "startsAt",
        "fingerprint",
        "generatorURL",
    ] {
        if let Some(value) = alert.get(key) {
            converted.insert(key.to_owned(), value.clone());
        }
    }
    let webhook = serde_json::json!({
        "version": "4",
        "status": "firing",
        "alerts": [converted],
    });
    let body = serde_json::to_vec(&webhook).map_err(|e| e.to_string())?;
    checked(Payload::Alertmanager, body, at).map_err(|e| format!(" (as a webhook): {e}"))
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.reason),
            line => write!(f, "{}:{line}: {}", self.file, self.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-25T17:00:00Z";

    fn webhook(alerts: &str) -> String {
        format!(r#"{{"version":"4","status":"firing","alerts":[{alerts}]}}"#)
    }

    fn alert(status: &str, starts: &str, ends: &str) -> String {
        format!(
            r#"{{"status":"{status}","labels":{{"alertname":"A","namespace":"prod","pod":"p"}},"startsAt":"{starts}","endsAt":"{ends}"}}"#
        )
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn json_lines_are_one_body_each_timed_by_the_latest_start_or_resolved_end() {
        let text = format!(
            "{}\n\n{}\n",
            webhook(&format!(
                "{},{}",
                alert("firing", T, "0001-01-01T00:00:00Z"),
                alert("firing", "2026-11-25T17:00:05Z", "0001-01-01T00:00:00Z")
            )),
            webhook(&alert("resolved", T, "2026-11-25T17:03:00Z")),
        );
        let docs = documents("f.jsonl", text.as_bytes()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].payload, Payload::Alertmanager);
        assert_eq!(docs[0].at, ts("2026-11-25T17:00:05Z"));
        assert_eq!(
            docs[1].at,
            ts("2026-11-25T17:03:00Z"),
            "a resolved alert's endsAt"
        );
    }

    #[test]
    fn a_firing_alerts_end_is_not_its_time() {
        let text = webhook(&alert("firing", T, "2026-11-25T18:00:00Z"));
        assert_eq!(documents("f", text.as_bytes()).unwrap()[0].at, ts(T));
    }

    #[test]
    fn a_wrapper_gives_the_receive_time_and_keeps_the_body() {
        let text = format!(
            r#"{{"received_at":"2026-11-25T17:10:00Z","body":{}}}"#,
            webhook(&alert("firing", T, "0001-01-01T00:00:00Z"))
        );
        let docs = documents("f", text.as_bytes()).unwrap();
        assert_eq!(docs[0].at, ts("2026-11-25T17:10:00Z"));
        let body: Value = serde_json::from_slice(&docs[0].body).unwrap();
        assert_eq!(body["alerts"][0]["labels"]["alertname"], "A");
    }

    #[test]
    fn an_event_is_timed_by_last_then_event_then_first_timestamp() {
        let event = |times: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Event","type":"Warning","reason":"BackOff","involvedObject":{{"kind":"Pod","name":"p","namespace":"prod"}}{times}}}"#
            )
        };
        let first = r#","firstTimestamp":"2026-11-25T17:00:00Z""#;
        let last = r#","lastTimestamp":"2026-11-25T17:09:00Z""#;
        let event_time = r#","eventTime":"2026-11-25T17:05:00.000000Z""#;
        let at = |times: String| documents("e", event(&times).as_bytes()).unwrap()[0].at;
        assert_eq!(at(first.to_owned()), ts("2026-11-25T17:00:00Z"));
        assert_eq!(
            at(format!("{first}{event_time}")),
            ts("2026-11-25T17:05:00Z")
        );
        assert_eq!(
            at(format!("{first}{event_time}{last}")),
            ts("2026-11-25T17:09:00Z")
        );
        let docs = documents("e", event(first).as_bytes()).unwrap();
        assert_eq!(docs[0].payload, Payload::KubernetesEvent);
    }

    #[test]
    fn an_api_v2_alert_list_becomes_one_firing_webhook_per_alert() {
        let text = r#"[
          {"labels":{"alertname":"A","namespace":"prod","pod":"p1"},"annotations":{},"startsAt":"2026-11-25T17:00:00Z","endsAt":"2026-11-25T17:05:00Z","status":{"state":"active"}},
          {"labels":{"alertname":"A","namespace":"prod","pod":"p2"},"annotations":{},"startsAt":"2026-11-25T17:00:07Z","endsAt":"2026-11-25T17:05:00Z","status":{"state":"suppressed"}}
        ]"#;
        let docs = documents("alerts.json", text.as_bytes()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].at, ts("2026-11-25T17:00:07Z"));
        let signals = gateway_signal::parse_alertmanager(&docs[1].body, docs[1].at).unwrap();
        assert_eq!(signals[0].status, gateway_ports::SignalStatus::Firing);
        assert_eq!(signals[0].resource.name, "p2");
    }

    #[test]
    fn a_pretty_printed_document_is_one_body() {
        let text = "{\n  \"version\": \"4\",\n  \"alerts\": [\n    {\"status\": \"firing\", \"labels\": {\"alertname\": \"A\"}, \"startsAt\": \"2026-11-25T17:00:00Z\"}\n  ]\n}\n";
        assert_eq!(documents("f.json", text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let good = webhook(&alert("firing", T, ""));
        let text = format!("{good}\n{good}\n{{\"version\": \"4\", \"alerts\": [\n");
        let e = documents("storm.jsonl", text.as_bytes()).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("storm.jsonl", 3), "{e}");
        assert!(e.reason.starts_with("malformed JSON"), "{e}");
        let e = documents(
            "f",
            format!("{good}\n{{\"version\": 4,, }}\n{good}\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e}");

        let text = format!(
            "{good}\n{}\n",
            webhook(r#"{"status":"firing","labels":{},"startsAt":"2026-11-25T17:00:00Z"}"#)
        );
        let e = documents("storm.jsonl", text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("alerts[0].labels.alertname"), "{e}");

        let e = documents("x", b"\n\n{\"hello\": 1}\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("not a replayable document"), "{e}");

        let e = documents("x", b"42").unwrap_err();
        assert!(e.reason.contains("not a replayable document"), "{e}");
    }

    #[test]
    fn a_body_without_a_time_is_refused_with_the_way_out() {
        let text = webhook(
            r#"{"status":"firing","labels":{"alertname":"A"},"startsAt":"0001-01-01T00:00:00Z"}"#,
        );
        let e = documents("f", text.as_bytes()).unwrap_err();
        assert!(e.reason.contains("received_at"), "{e}");
        let e = documents("f", br#"{"received_at":"yesterday","body":{}}"#).unwrap_err();
        assert!(e.reason.contains(".received_at"), "{e}");
    }

    #[test]
    fn an_empty_file_has_no_documents() {
        assert!(documents("f", b"").unwrap().is_empty());
        assert!(documents("f", b"\n  \n").unwrap().is_empty());
    }

    #[test]
    fn a_directory_is_its_json_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let body = |t: &str| webhook(&alert("firing", t, ""));
        std::fs::write(dir.path().join("b.json"), body("2026-11-25T17:00:01Z")).unwrap();
        std::fs::write(dir.path().join("a.json"), body("2026-11-25T17:00:09Z")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
        let docs = read(&[dir.path().to_path_buf()]).unwrap();
        let times: Vec<_> = docs.iter().map(|d| d.at).collect();
        assert_eq!(
            times,
            [ts("2026-11-25T17:00:09Z"), ts("2026-11-25T17:00:01Z")]
        );
        let e = read(&[dir.path().join("missing.jsonl")]).unwrap_err();
        assert!(e.to_string().contains("missing.jsonl: cannot read"), "{e}");
    }
}
