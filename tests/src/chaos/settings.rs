//! The settings a chaos run starts with (storm thresholds low enough for the set's storm, windows
//! that close within seconds), and the kubelet-style swaps of scenario (d), a third invalid.

/// `storm.yaml`: a pattern storm past 10 pods of one alert name; windows close after 2 s quiet.
pub const STORM: &str = "rate_threshold: 1000\npattern_threshold: 10\nbuffer_threshold: 5\n\
inactivity_timeout: 2s\nmax_window_duration: 60s\nsampling_threshold: 0.5\nsampling_rate: 0.5\n";
/// `dedup.yaml`.
pub const DEDUP: &str = "ttl: 5m\n";
/// `retry.yaml`: quick retries (the sender's `Retry-After` is `max_backoff`, at least 1 s).
pub const RETRY: &str = "max_attempts: 3\ninitial_backoff: 50ms\nmax_backoff: 1s\n";

/// The three files, as `KubeletDir` takes them.
pub fn baseline() -> Vec<(&'static str, String)> {
    vec![
        ("storm.yaml", STORM.to_owned()),
        ("dedup.yaml", DEDUP.to_owned()),
        ("retry.yaml", RETRY.to_owned()),
    ]
}

/// How long after the last signal every storm window of [`STORM`] is closed and written (the
/// inactivity timeout, a tick, a write).
pub const WINDOWS_CLOSED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The `i`-th ConfigMap content of the swap sequence: every third one invalid, in turn bad YAML,
/// out of range, a huge duration, truncated, empty, a file removed; the others valid variations
/// of [`baseline`] (thresholds, timeouts, TTL, attempts).
pub fn swap(i: usize) -> Vec<(&'static str, String)> {
    let mut files = baseline();
    if i % 3 == 2 {
        let (file, content) = match (i / 3) % 8 {
            0 => (
                "storm.yaml",
                "rate_threshold: [10\npattern_threshold: {".to_owned(),
            ),
            1 => (
                "storm.yaml",
                STORM.replace("pattern_threshold: 10", "pattern_threshold: 0"),
            ),
            2 => ("retry.yaml", "max_attempts: 99\n".to_owned()),
            3 => (
                "storm.yaml",
                STORM.replace(
                    "inactivity_timeout: 2s",
                    "inactivity_timeout: 300000000000y",
                ),
            ),
            4 => ("dedup.yaml", "ttl: 300000000000y\n".to_owned()),
            5 => ("storm.yaml", STORM[..STORM.len() / 2].to_owned()),
            6 => ("dedup.yaml", String::new()),
            _ => {
                files.retain(|(f, _)| *f != "retry.yaml");
                return files;
            }
        };
        set(&mut files, file, content);
        return files;
    }
    let pattern = [8, 10, 12][i % 3];
    let buffer = [3, 5, 7][(i / 3) % 3];
    let quiet = ["1s", "2s", "3s"][(i / 9) % 3];
    let storm = STORM
        .replace(
            "pattern_threshold: 10",
            &format!("pattern_threshold: {pattern}"),
        )
        .replace(
            "buffer_threshold: 5",
            &format!("buffer_threshold: {buffer}"),
        )
        .replace(
            "inactivity_timeout: 2s",
            &format!("inactivity_timeout: {quiet}"),
        );
    set(&mut files, "storm.yaml", storm);
    set(&mut files, "dedup.yaml", format!("ttl: {}m\n", 2 + i % 4));
    set(
        &mut files,
        "retry.yaml",
        RETRY.replace("max_attempts: 3", &format!("max_attempts: {}", 2 + i % 3)),
    );
    files
}

fn set(files: &mut [(&'static str, String)], file: &str, content: String) {
    if let Some(slot) = files.iter_mut().find(|(f, _)| *f == file) {
        slot.1 = content;
    }
}
