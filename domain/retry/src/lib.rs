//! The retry policy for RemediationRequest writes: which failures are worth another attempt, and
//! how long to wait before it.
//!
//! - [`classify`] sorts a [`WriteFailure`](gateway_ports::WriteFailure): throttling,
//!   unavailability, timeouts, broken connections and lost races are transient; `AlreadyExists`
//!   means the work is there, which is success; a missing resource or a rejection is permanent.
//!   The metrics label failed attempts by the same classification.
//! - Before retry *n* the wait is `initial_backoff · 2^(n-1)`, capped at `max_backoff`
//!   ([`base_delay`]), with "equal jitter" ([`equal_jitter`]): half of it fixed, half random, so
//!   gateway replicas that failed together do not retry together, yet no wait shrinks below half.
//!   A server's `Retry-After` replaces the computed wait, still capped at `max_backoff`.
//! - [`RetryState`] counts attempts and decides, failure by failure, whether to retry, stop as
//!   done, or give up; at most `max_attempts` attempts are made, the first included.
//!
//! Nothing here sleeps, reads a clock or draws from the operating system: the caller does the
//! waiting, passes the settings in force at each failure (they are hot-reloaded) and supplies the
//! randomness through [`Jitter`].

mod backoff;
mod class;
mod state;

pub use backoff::{Jitter, SplitMix64, base_delay, equal_jitter};
pub use class::{Class, classify};
pub use state::{Budget, GiveUpReason, RetryDecision, RetryState};
