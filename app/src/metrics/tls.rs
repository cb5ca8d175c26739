//! The HTTPS server's metrics: certificate reloads, the served certificate's expiry, failed
//! handshakes. Their series appear only when TLS is on (an expiry alert never fires on a
//! plain-HTTP gateway).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Metrics, register};

/// How a certificate reload ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReload {
    /// The new pair is served to new connections.
    Success,
    /// The new files cannot be served (unreadable, invalid, key not matching): the pair in
    /// force stays.
    Error,
}

impl TlsReload {
    const ALL: [TlsReload; 2] = [TlsReload::Success, TlsReload::Error];

    const fn as_str(self) -> &'static str {
        match self {
            TlsReload::Success => "success",
            TlsReload::Error => "error",
        }
    }
}

/// Why a TLS handshake failed, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within `--header-read-timeout`.
    Timeout,
    /// mTLS: the client presented no certificate.
    ClientCertificateMissing,
    /// mTLS: the client's certificate was refused (another CA, expired, not a client cert).
    ClientCertificateInvalid,
    /// The client aborted with an alert (e.g. it refused the gateway's certificate).
    ClientAlert,
    /// Anything else: not TLS (plain HTTP on the TLS port), no common version, a reset.
    Protocol,
}

impl HandshakeFailure {
    const ALL: [HandshakeFailure; 5] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::ClientCertificateMissing,
        HandshakeFailure::ClientCertificateInvalid,
        HandshakeFailure::ClientAlert,
        HandshakeFailure::Protocol,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ClientCertificateMissing => "client_certificate_missing",
            HandshakeFailure::ClientCertificateInvalid => "client_certificate_invalid",
            HandshakeFailure::ClientAlert => "client_alert",
            HandshakeFailure::Protocol => "protocol",
        }
    }
}

/// The TLS series.
#[derive(Debug, Clone)]
pub(super) struct TlsMetrics {
    reloads: IntCounterVec,
    expiry: IntGaugeVec,
    handshake_failures: IntCounterVec,
}

impl TlsMetrics {
    pub(super) fn register(r: &Registry) -> TlsMetrics {
        TlsMetrics {
            reloads: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_tls_reloads_total",
                        "Changes of the TLS certificate, key or client CA files, by result \
                         (error: the pair in force stays)",
                    ),
                    &["result"],
                ),
            ),
            expiry: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_tls_certificate_expiry_seconds",
                        "notAfter of the TLS certificate served, as a Unix timestamp",
                    ),
                    &[],
                ),
            ),
            handshake_failures: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_tls_handshake_failures_total",
                        "TLS handshakes that failed, by reason",
                    ),
                    &["reason"],
                ),
            ),
        }
    }
}

impl Metrics {
    /// TLS is on: its counters exist from now, at zero.
    pub fn tls_started(&self) {
        for result in TlsReload::ALL {
            self.tls.reloads.with_label_values(&[result.as_str()]);
        }
        for reason in HandshakeFailure::ALL {
            self.tls
                .handshake_failures
                .with_label_values(&[reason.as_str()]);
        }
    }

    /// The TLS files changed and were judged.
    pub fn tls_reloaded(&self, result: TlsReload) {
        self.tls.reloads.with_label_values(&[result.as_str()]).inc();
    }

    /// The certificate served now expires at `not_after` (Unix seconds).
    pub fn tls_certificate_expiry(&self, not_after: i64) {
        self.tls
            .expiry
            .with_label_values::<&str>(&[])
            .set(not_after);
    }

    /// A TLS handshake failed.
    pub fn tls_handshake_failed(&self, reason: HandshakeFailure) {
        self.tls
            .handshake_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_series_appear_only_once_tls_is_on() {
        let metrics = Metrics::new();
        assert!(!metrics.render().contains("gateway_tls_"));
        metrics.tls_started();
        metrics.tls_certificate_expiry(2_000_000_000);
        metrics.tls_handshake_failed(HandshakeFailure::ClientCertificateMissing);
        let text = metrics.render();
        assert!(
            text.contains("gateway_tls_certificate_expiry_seconds 2000000000"),
            "{text}"
        );
        assert!(
            text.contains("gateway_tls_reloads_total{result=\"error\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "gateway_tls_handshake_failures_total{reason=\"client_certificate_missing\"} 1"
            ),
            "{text}"
        );
    }
}
