//! What a replay reports: [`Report`] (its JSON field names are stable and documented in the
//! README), a side-by-side comparison of two, and both as a table for a terminal.

use std::collections::BTreeMap;

use gateway_adapter_file_config::Loaded;
use serde::Serialize;
use serde_json::{Map, Value};

use super::run::Tally;

/// One replay's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config directory replayed with.
    pub config: String,
    /// The settings that decide the numbers below.
    pub settings: SettingsShown,
    /// What was read.
    pub input: InputShown,
    /// Signals the bodies carried (every outcome below counted once).
    pub signals: u64,
    /// Signals by outcome, every outcome named (the outcomes a webhook answer gives).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Repeats within the dedup TTL (`outcomes.duplicate`).
    pub duplicates: u64,
    /// Refused for their namespace (`outcomes.rejected`; the replay's sink refuses nothing).
    pub rejected: u64,
    /// Storm signals counted in an aggregate but not listed in it (`outcomes.sampled_out`).
    pub sampled_out: u64,
    /// Storms detected (aggregation windows opened), by type.
    pub storms: Storms,
    /// The RemediationRequests that would exist at the end.
    pub remediation_requests: Requests,
    /// The storm aggregates among them.
    pub aggregates: Aggregates,
    /// The writes the sink was asked for (the API calls of the Kubernetes sink).
    pub api_writes: ApiWrites,
}

/// The settings in force.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsShown {
    /// `storm.yaml` `rate_threshold`.
    pub rate_threshold: u32,
    /// `storm.yaml` `pattern_threshold`.
    pub pattern_threshold: u32,
    /// `storm.yaml` `buffer_threshold`.
    pub buffer_threshold: u32,
    /// `storm.yaml` `inactivity_timeout`.
    pub inactivity_timeout: String,
    /// `storm.yaml` `max_window_duration`.
    pub max_window_duration: String,
    /// `dedup.yaml` `ttl`.
    pub dedup_ttl: String,
}

/// What was read.
#[derive(Debug, Clone, Serialize)]
pub struct InputShown {
    /// Request bodies replayed.
    pub bodies: u64,
    /// Bodies refused whole by the request limits (`--max-alerts-per-request`, …).
    pub refused_bodies: u64,
    /// The first recorded time (`null` without input).
    pub first: Option<String>,
    /// The last recorded time.
    pub last: Option<String>,
}

/// Storms by type.
#[derive(Debug, Clone, Serialize)]
pub struct Storms {
    /// Too many signals of one alert name in a minute.
    pub rate: u64,
    /// Too many distinct resources hit by one alert name in two minutes.
    pub pattern: u64,
    /// Both.
    pub total: u64,
}

/// RemediationRequests by kind.
#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    /// One signal each (flushed storm buffers included).
    pub individual: u64,
    /// One storm window each.
    pub aggregates: u64,
    /// Both.
    pub total: u64,
}

/// The storm aggregates and their sizes.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregates {
    /// How many.
    pub count: u64,
    /// Of rate storms.
    pub rate: u64,
    /// Of pattern storms.
    pub pattern: u64,
    /// Alerts each took in (`stormAlertCount`, sampled-out ones included).
    pub alerts: Sizes,
    /// Resources each lists (`affectedResources`).
    pub resources: Sizes,
    /// Aggregates by alerts taken in: `1-9`, `10-99`, `100-999`, `1000+`.
    pub histogram: BTreeMap<&'static str, u64>,
}

/// A distribution's total, largest and median (the lower middle value; 0 when empty).
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// Sum.
    pub total: u64,
    /// Largest.
    pub max: u64,
    /// Median.
    pub p50: u64,
}

/// Writes by port call.
#[derive(Debug, Clone, Serialize)]
pub struct ApiWrites {
    /// Creations (`POST`).
    pub creates: u64,
    /// Aggregate updates: growth, sampling counts, closing (`PATCH`).
    pub updates: u64,
    /// Coalesced occurrence counts of duplicates (`PATCH`).
    pub occurrence_updates: u64,
    /// Of those, the ones whose RemediationRequest does not exist (404): duplicates of a
    /// signal that went into an aggregate, or whose resource is not written yet.
    pub occurrence_not_found: u64,
    /// All of them.
    pub total: u64,
}

const BUCKETS: [(&str, u64); 4] = [
    ("1-9", 10),
    ("10-99", 100),
    ("100-999", 1000),
    ("1000+", u64::MAX),
];

impl Sizes {
    fn of(mut values: Vec<u64>) -> Sizes {
        values.sort_unstable();
        Sizes {
            total: values.iter().sum(),
            max: values.last().copied().unwrap_or(0),
            p50: values
                .get(values.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0),
        }
    }
}

impl Report {
    /// The report of `tally`, replayed with `settings` from `config`.
    pub fn new(config: &str, settings: &Loaded, tally: &Tally) -> Report {
        let outcome = |name: &str| tally.outcomes.get(name).copied().unwrap_or(0);
        let storm = &settings.storm;
        let aggregates: Vec<_> = tally
            .resources
            .iter()
            .filter_map(|r| r.spec.storm.as_ref())
            .collect();
        let of_type = |t: &str| aggregates.iter().filter(|a| a.storm_type == t).count() as u64;
        let alerts: Vec<u64> = aggregates.iter().map(|a| a.storm_alert_count).collect();
        let mut histogram: BTreeMap<&'static str, u64> =
            BUCKETS.iter().map(|(name, _)| (*name, 0)).collect();
        for count in &alerts {
            if let Some((name, _)) = BUCKETS.iter().find(|(_, below)| count < below) {
                *histogram.entry(name).or_default() += 1;
            }
        }
        let individual = tally.resources.len() as u64 - aggregates.len() as u64;
        let storm_count = |t: &str| tally.storms.get(t).copied().unwrap_or(0);
        let calls = tally.calls;
        let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
        Report {
            config: config.to_owned(),
            settings: SettingsShown {
                rate_threshold: storm.rate_threshold.get(),
                pattern_threshold: storm.pattern_threshold.get(),
                buffer_threshold: storm.buffer_threshold.get(),
                inactivity_timeout: duration(storm.inactivity_timeout),
                max_window_duration: duration(storm.max_window_duration),
                dedup_ttl: duration(settings.dedup.ttl.get()),
            },
            input: InputShown {
                bodies: tally.bodies,
                refused_bodies: tally.refused_bodies,
                first: tally.span.map(|(first, _)| first.to_rfc3339()),
                last: tally.span.map(|(_, last)| last.to_rfc3339()),
            },
            signals: tally.outcomes.values().sum(),
            outcomes: tally.outcomes.clone(),
            duplicates: outcome("duplicate"),
            rejected: outcome("rejected"),
            sampled_out: outcome("sampled_out"),
            storms: Storms {
                rate: storm_count("rate"),
                pattern: storm_count("pattern"),
                total: storm_count("rate") + storm_count("pattern"),
            },
            remediation_requests: Requests {
                individual,
                aggregates: aggregates.len() as u64,
                total: tally.resources.len() as u64,
            },
            aggregates: Aggregates {
                count: aggregates.len() as u64,
                rate: of_type("rate"),
                pattern: of_type("pattern"),
                alerts: Sizes::of(alerts),
                resources: Sizes::of(
                    aggregates
                        .iter()
                        .map(|a| a.affected_resources.len() as u64)
                        .collect(),
                ),
                histogram,
            },
            api_writes: ApiWrites {
                creates: calls.creates,
                updates: calls.updates,
                occurrence_updates: calls.occurrence_updates,
                occurrence_not_found: calls.occurrence_not_found,
                total: calls.creates + calls.updates + calls.occurrence_updates,
            },
        }
    }
}

/// Two replays side by side: `{"a": …, "b": …, "difference": …}`, the difference being
/// `b − a` for every number (other fields left out).
pub fn comparison(a: &Report, b: &Report) -> Value {
    let a = to_value(a);
    let b = to_value(b);
    let difference = difference(&a, &b).unwrap_or(Value::Null);
    serde_json::json!({ "a": a, "b": b, "difference": difference })
}

fn to_value(report: &Report) -> Value {
    // A struct of strings, numbers and maps with string keys always serialises.
    serde_json::to_value(report).unwrap_or(Value::Null)
}

fn difference(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_i64()?, y.as_i64()?);
            Some(Value::from(y - x))
        }
        (Value::Object(x), Value::Object(y)) => {
            let fields: Map<String, Value> = x
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), difference(v, y.get(k)?)?)))
                .collect();
            (!fields.is_empty()).then_some(Value::Object(fields))
        }
        _ => None,
    }
}

/// The sections of a report in the order a table shows them (a JSON object keeps its keys
/// sorted).
const SECTIONS: [&str; 12] = [
    "config",
    "settings",
    "input",
    "signals",
    "outcomes",
    "duplicates",
    "rejected",
    "sampled_out",
    "storms",
    "remediation_requests",
    "aggregates",
    "api_writes",
];

/// The leaves of a report as `dotted.key → text` rows: sections in [`SECTIONS`] order, the
/// fields of each sorted.
fn report_rows(report: &Report) -> Vec<(String, String)> {
    let value = to_value(report);
    let mut out = Vec::new();
    for section in SECTIONS {
        if let Some(field) = value.get(section) {
            rows(field, section, &mut out);
        }
    }
    out
}

fn rows(value: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                rows(field, &key, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null => out.push((prefix.to_owned(), "-".to_owned())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// One report as a two-column table.
pub fn table(report: &Report) -> String {
    let out = report_rows(report);
    let width = out.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let value_width = out.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    out.iter()
        .map(|(k, v)| format!("{k:<width$}  {v:>value_width$}\n"))
        .collect()
}

/// Two reports as a table: the field, A, B, and B − A where both are numbers.
pub fn comparison_table(a: &Report, b: &Report) -> String {
    let (ra, rb) = (report_rows(a), report_rows(b));
    let mut lines = vec![(
        "".to_owned(),
        "A".to_owned(),
        "B".to_owned(),
        "B-A".to_owned(),
    )];
    for ((key, x), (_, y)) in ra.into_iter().zip(rb) {
        let delta = match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(x), Ok(y)) if y != x => format!("{:+}", y - x),
            (Ok(_), Ok(_)) => "0".to_owned(),
            _ if x != y => "changed".to_owned(),
            _ => String::new(),
        };
        lines.push((key, x, y, delta));
    }
    let w0 = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
    let w1 = lines.iter().map(|l| l.1.len()).max().unwrap_or(0);
    let w2 = lines.iter().map(|l| l.2.len()).max().unwrap_or(0);
    let w3 = lines.iter().map(|l| l.3.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, x, y, d)| format!("{k:<w0$}  {x:>w1$}  {y:>w2$}  {d:>w3$}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_lower_middle_value() {
        let s = Sizes::of(vec![40, 10, 30, 20]);
        assert_eq!((s.total, s.max, s.p50), (100, 40, 20));
        let s = Sizes::of(vec![]);
        assert_eq!((s.total, s.max, s.p50), (0, 0, 0));
    }

    #[test]
    fn a_table_shows_every_section() {
        let report = Report::new(
            "cfg",
            &Loaded {
                storm: Default::default(),
                dedup: Default::default(),
                retry: Default::default(),
                security: Default::default(),
                warnings: Vec::new(),
            },
            &Tally::default(),
        );
        let Value::Object(fields) = to_value(&report) else {
            panic!("a report is an object")
        };
        let mut keys: Vec<_> = fields.keys().map(String::as_str).collect();
        let mut sections = SECTIONS.to_vec();
        keys.sort_unstable();
        sections.sort_unstable();
        assert_eq!(keys, sections);
        let text = table(&report);
        assert!(text.starts_with("config "), "{text}");
        assert!(text.contains("api_writes.total"), "{text}");
    }

    #[test]
    fn the_difference_is_b_minus_a_for_numbers_only() {
        let a = serde_json::json!({"x": 3, "s": "one", "in": {"y": 10, "z": null}});
        let b = serde_json::json!({"x": 5, "s": "two", "in": {"y": 4, "z": null}});
        assert_eq!(
            difference(&a, &b).unwrap(),
            serde_json::json!({"x": 2, "in": {"y": -6}})
        );
    }
}
