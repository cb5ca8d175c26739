//! Sorting write failures into transient, permanent and "already there": the one classification
//! the retry policy and the metrics share.

use std::time::Duration;

use gateway_ports::WriteFailure;

/// What a failed write means for the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Another attempt may succeed.
    Retryable {
        /// How long the sink asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Permanent,
    /// The resource already exists: the work is there, so the write counts as done.
    AlreadyExists,
}

impl Class {
    /// The metric label: `retryable`, `permanent` or `already_exists`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Retryable { .. } => "retryable",
            Class::Permanent => "permanent",
            Class::AlreadyExists => "already_exists",
        }
    }
}

/// Classifies one failed write.
///
/// Throttling, unavailability, timeouts, broken connections and lost races (`Conflict`: read
/// again and write) are retryable, keeping the sink's `Retry-After`; `AlreadyExists` is done; a
/// missing resource or a rejection is permanent.
pub fn classify(failure: &WriteFailure) -> Class {
    match *failure {
        WriteFailure::Throttled { retry_after } | WriteFailure::Unavailable { retry_after } => {
            Class::Retryable { retry_after }
        }
        WriteFailure::Timeout | WriteFailure::Connection | WriteFailure::Conflict => {
            Class::Retryable { retry_after: None }
        }
        WriteFailure::AlreadyExists => Class::AlreadyExists,
        WriteFailure::NotFound | WriteFailure::Rejected { .. } => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::Rejection;

    use super::*;

    const SECS_2: Option<Duration> = Some(Duration::from_secs(2));

    #[test]
    fn throttling_and_unavailability_are_retryable_with_the_sinks_wait() {
        for retry_after in [None, SECS_2] {
            for failure in [
                WriteFailure::Throttled { retry_after },
                WriteFailure::Unavailable { retry_after },
            ] {
                assert_eq!(
                    classify(&failure),
                    Class::Retryable { retry_after },
                    "{failure:?}"
                );
            }
        }
    }

    #[test]
    fn timeouts_connection_failures_and_lost_races_are_retryable() {
        for failure in [
            WriteFailure::Timeout,
            WriteFailure::Connection,
            WriteFailure::Conflict,
        ] {
            assert_eq!(classify(&failure), Class::Retryable { retry_after: None });
        }
    }

    #[test]
    fn already_exists_means_the_work_is_done() {
        assert_eq!(classify(&WriteFailure::AlreadyExists), Class::AlreadyExists);
    }

    #[test]
    fn missing_resources_and_rejections_are_permanent() {
        assert_eq!(classify(&WriteFailure::NotFound), Class::Permanent);
        for reason in [
            Rejection::Invalid,
            Rejection::Unauthorized,
            Rejection::Forbidden,
            Rejection::Unsupported,
        ] {
            assert_eq!(
                classify(&WriteFailure::Rejected { reason }),
                Class::Permanent,
                "{reason:?}"
            );
        }
    }

    #[test]
    fn every_failure_has_a_label_of_its_own() {
        let all = [
            WriteFailure::NotFound,
            WriteFailure::AlreadyExists,
            WriteFailure::Conflict,
            WriteFailure::Throttled { retry_after: None },
            WriteFailure::Unavailable { retry_after: None },
            WriteFailure::Timeout,
            WriteFailure::Connection,
            WriteFailure::Rejected {
                reason: Rejection::Invalid,
            },
        ];
        let labels: Vec<&str> = all.iter().map(|f| f.as_str()).collect();
        assert_eq!(labels, WriteFailure::LABELS);
    }
}
