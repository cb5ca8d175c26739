//! Limits on what one request may carry, so that memory and time follow the gateway's flags,
//! not the sender's input: the alerts of one webhook, and each alert's labels and annotations
//! (which storm buffers hold until their window closes). A request past a limit is refused
//! whole, with a problem naming the limit.

use gateway_ports::Signal;

/// The limits (each a `serve` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// `--max-alerts-per-request`: signals in one request.
    pub max_alerts: usize,
    /// `--max-labels`: labels of one alert, and annotations of one alert (each).
    pub max_labels: usize,
    /// `--max-label-bytes`: bytes of one alert's label and annotation names and values together.
    pub max_label_bytes: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_alerts: 1000,
            max_labels: 64,
            max_label_bytes: 32 * 1024,
        }
    }
}

/// A request past one of the [`InputLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    /// Too many alerts in one request (413).
    #[error(
        "{count} alerts in one request, more than --max-alerts-per-request ({max}): send fewer per request (Alertmanager: max_alerts in the webhook_config)"
    )]
    Alerts {
        /// Alerts sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An alert with too many labels or annotations (400).
    #[error("alerts[{index}].{field}: {count} entries, more than --max-labels ({max})")]
    Labels {
        /// The alert's position.
        index: usize,
        /// `labels` or `annotations`.
        field: &'static str,
        /// Entries sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An alert whose labels and annotations are too big (400).
    #[error(
        "alerts[{index}]: {bytes} bytes of labels and annotations, more than --max-label-bytes ({max})"
    )]
    Bytes {
        /// The alert's position.
        index: usize,
        /// Bytes sent.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl OverLimit {
    /// The flag that sets the limit.
    pub const fn flag(&self) -> &'static str {
        match self {
            OverLimit::Alerts { .. } => "--max-alerts-per-request",
            OverLimit::Labels { .. } => "--max-labels",
            OverLimit::Bytes { .. } => "--max-label-bytes",
        }
    }
}

impl InputLimits {
    /// Checks the signals of one request, in order; the first limit passed.
    pub fn check(&self, signals: &[Signal]) -> Result<(), OverLimit> {
        if signals.len() > self.max_alerts {
            return Err(OverLimit::Alerts {
                count: signals.len(),
                max: self.max_alerts,
            });
        }
        for (index, signal) in signals.iter().enumerate() {
            for (field, map) in [
                ("labels", &signal.labels),
                ("annotations", &signal.annotations),
            ] {
                if map.len() > self.max_labels {
                    return Err(OverLimit::Labels {
                        index,
                        field,
                        count: map.len(),
                        max: self.max_labels,
                    });
                }
            }
            let bytes: usize = signal
                .labels
                .iter()
                .chain(&signal.annotations)
                .map(|(k, v)| k.len().saturating_add(v.len()))
                .fold(0, usize::saturating_add);
            if bytes > self.max_label_bytes {
                return Err(OverLimit::Bytes {
                    index,
                    bytes,
                    max: self.max_label_bytes,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::test_util;

    use super::*;

    fn limits() -> InputLimits {
        InputLimits {
            max_alerts: 2,
            max_labels: 3,
            max_label_bytes: 100,
        }
    }

    #[test]
    fn within_every_limit_passes() {
        let signals = vec![
            test_util::signal("A").build(),
            test_util::signal("B").build(),
        ];
        assert_eq!(limits().check(&signals), Ok(()));
    }

    #[test]
    fn each_limit_is_named_with_the_alert_past_it() {
        let many = vec![test_util::signal("A").build(); 3];
        assert_eq!(
            limits().check(&many).map_err(|e| e.flag()),
            Err("--max-alerts-per-request")
        );

        let mut labelled = test_util::signal("A").build();
        for n in 0..4 {
            labelled.annotations.insert(format!("a{n}"), String::new());
        }
        let e = limits()
            .check(&[test_util::signal("B").build(), labelled])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "alerts[1].annotations: 4 entries, more than --max-labels (3)"
        );

        let mut big = test_util::signal("A").build();
        big.labels.clear();
        big.labels.insert("k".to_owned(), "v".repeat(100));
        let e = limits().check(&[big]).unwrap_err();
        assert_eq!(e.flag(), "--max-label-bytes");
        assert!(e.to_string().contains("101 bytes"), "{e}");
    }
}
