//! Where a RemediationRequest lands, and what a write that can never succeed becomes.
//!
//! A request goes to its signal's namespace. When the sink says that namespace does not exist, or
//! that the gateway may not write there, it goes to the fallback namespace instead, with the
//! original namespace recorded ([`remediation::rehome`]), as Kubernaut does. What the sink still
//! refuses for its content is a [`NotPlaced::Rejected`]: answered `rejected` (a request) or
//! dead-lettered (a background write), never resent or retried forever. Anything else that
//! fails — transient trouble, or the gateway's own set-up (the fallback namespace missing, RBAC)
//! — is a [`NotPlaced::Failed`]: the sender resends, the backlog keeps it.

use std::sync::Arc;

use gateway_ports::{Rejection, RemediationRequest, WriteFailure, Written};

use crate::remediation;
use crate::writer::{Deadline, Op, RetryingWriter, WriteFailed};

/// Why a RemediationRequest was not written.
#[derive(Debug, thiserror::Error)]
pub enum NotPlaced {
    /// The sink refuses its content, and would in any namespace.
    #[error("RemediationRequest {name} rejected: {detail}")]
    Rejected {
        /// The resource name.
        name: String,
        /// The sink's words (safe to show).
        detail: String,
    },
    /// Not written now; another attempt later may succeed.
    #[error(transparent)]
    Failed(#[from] WriteFailed),
}

/// The retrying writer, placing each request in its namespace or the fallback one.
#[derive(Debug)]
pub struct Placement {
    writer: Arc<RetryingWriter>,
    fallback: String,
}

/// A namespace the sink will not take this request in, where the fallback namespace may.
fn misplaced(failure: WriteFailure) -> bool {
    matches!(
        failure,
        WriteFailure::NotFound
            | WriteFailure::Rejected {
                reason: Rejection::Forbidden
            }
    )
}

impl Placement {
    /// Writes through `writer`; `fallback` takes what the signal's namespace will not.
    pub fn new(writer: Arc<RetryingWriter>, fallback: String) -> Self {
        Placement { writer, fallback }
    }

    /// Writes `request` (see the module docs); `Ok` with what the write did.
    pub async fn write(
        &self,
        op: Op,
        request: &RemediationRequest,
        deadline: Option<Deadline>,
    ) -> Result<Written, NotPlaced> {
        let failed = match self.writer.write(op, request, deadline).await {
            Ok(written) => return Ok(written),
            Err(failed) => failed,
        };
        if !misplaced(failed.last.failure) || request.namespace == self.fallback {
            return Err(settle(failed));
        }
        tracing::warn!(
            name = %request.name, namespace = %request.namespace, fallback = %self.fallback,
            error = %failed.last.message,
            "namespace refused: writing the RemediationRequest to the fallback namespace");
        let mut moved = request.clone();
        remediation::rehome(&mut moved, &request.namespace, &self.fallback);
        self.writer
            .write(op, &moved, deadline)
            .await
            .map_err(settle)
    }
}

/// A failure the fallback namespace cannot help with: a rejection of the content, or a failure
/// to try again later.
fn settle(failed: WriteFailed) -> NotPlaced {
    match failed.last.failure {
        WriteFailure::Rejected {
            reason: Rejection::Invalid,
        } => NotPlaced::Rejected {
            name: failed.name,
            detail: failed.last.message,
        },
        _ => NotPlaced::Failed(failed),
    }
}
