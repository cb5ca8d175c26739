//! Sorting write failures into transient, permanent and "already there".

use std::time::Duration;

use gateway_ports::WriteFailure;

/// What a failed write means for the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Another attempt may succeed.
    Retryable {
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Permanent,
    /// The resource already exists: the work is there, so the write counts as done.
    AlreadyExists,
}

/// Classifies one failed write.
///
/// HTTP 429, 500, 502, 503 and 504, timeouts and connection failures are retryable (keeping the
/// server's `Retry-After`); 409 is [`Class::AlreadyExists`]; every other status is permanent; a
/// local sink's failure is retryable exactly when it says so.
pub fn classify(failure: &WriteFailure) -> Class {
    match *failure {
        WriteFailure::Status { code, retry_after } => match code {
            429 | 500 | 502 | 503 | 504 => Class::Retryable { retry_after },
            409 => Class::AlreadyExists,
            // Includes 501 and 505: a server that cannot do the request now will not do it later.
            _ => Class::Permanent,
        },
        WriteFailure::Timeout | WriteFailure::Connection => Class::Retryable { retry_after: None },
        WriteFailure::Local { retryable: true } => Class::Retryable { retry_after: None },
        WriteFailure::Local { retryable: false } => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> WriteFailure {
        WriteFailure::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for code in [429, 500, 502, 503, 504] {
            assert_eq!(
                classify(&status(code)),
                Class::Retryable { retry_after: None },
                "{code}"
            );
        }
    }

    #[test]
    fn a_retryable_status_keeps_the_servers_retry_after() {
        let failure = WriteFailure::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            classify(&failure),
            Class::Retryable {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn timeouts_and_connection_failures_are_retryable() {
        for failure in [WriteFailure::Timeout, WriteFailure::Connection] {
            assert_eq!(classify(&failure), Class::Retryable { retry_after: None });
        }
    }

    #[test]
    fn conflict_means_the_resource_already_exists() {
        assert_eq!(classify(&status(409)), Class::AlreadyExists);
    }

    #[test]
    fn client_errors_and_unknown_statuses_are_permanent() {
        for code in [400, 401, 403, 404, 422, 408, 501, 505, 599, 200, 0] {
            assert_eq!(classify(&status(code)), Class::Permanent, "{code}");
        }
    }

    #[test]
    fn a_permanent_status_ignores_retry_after() {
        let failure = WriteFailure::Status {
            code: 400,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(classify(&failure), Class::Permanent);
    }

    #[test]
    fn a_local_failure_is_retryable_exactly_when_it_says_so() {
        assert_eq!(
            classify(&WriteFailure::Local { retryable: true }),
            Class::Retryable { retry_after: None }
        );
        assert_eq!(
            classify(&WriteFailure::Local { retryable: false }),
            Class::Permanent
        );
    }
}
