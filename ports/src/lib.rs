//! The ports of the gateway: the traits through which the pure domain and the app reach the outside
//! world, and the vocabulary (types) those traits speak.
//!
//! Nothing here performs IO or names a vendor type. Each trait's rustdoc is its contract; adapters
//! (in-memory, Redis, Kubernetes, files) implement it and are checked against it by conformance tests.
//!
//! For other crates' tests: mockall mocks of the ports (feature `mocks`), and builders of the
//! vocabulary plus a manual clock in `test_util` (feature `test-util`).

pub mod auth;
pub mod config;
pub mod dedup;
pub mod outbox;
pub mod remediation;
pub mod settings;
pub mod signal;
pub mod storm;
pub mod storm_history;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod text;
pub mod time;
pub mod window_slot;

pub use auth::{Action, Authenticator, Denial, Verdict};
pub use config::{
    ChangeListener, ConfigControl, ConfigKind, ConfigSource, ConfigSourceExt, ConfigStatus,
    ReloadRecord, ReloadResult, Settings, SettingsCell,
};
pub use dedup::{DedupStore, DedupWindow, Seen, StoreError};
pub use outbox::{Outbox, OutboxEntry};
pub use remediation::{
    AffectedResource, DeduplicationInfo, Occurrences, Progress, Rejection, RemediationRequest,
    RemediationWriter, StormInfo, WriteError, WriteFailure, Written,
};
pub use settings::{
    DedupSettings, InvalidSettings, NamespaceGlob, NamespaceGlobs, Ratio, RetrySettings,
    SecuritySettings, SettingError, StormSettings, Threshold, Ttl,
};
pub use signal::{Fingerprint, ResourceRef, Severity, Signal, SignalSource, SignalStatus};
pub use storm::{Counting, StoredWindow, StormCounter, StormCounts, WindowStore};
pub use storm_history::{StormHistory, resource_member};
pub use text::truncated;
pub use time::{Clock, Timestamp};
pub use window_slot::{Replacement, WindowSlot};

#[cfg(feature = "mocks")]
pub use auth::MockAuthenticator;
#[cfg(feature = "mocks")]
pub use config::MockConfigSource;
#[cfg(feature = "mocks")]
pub use dedup::MockDedupStore;
#[cfg(feature = "mocks")]
pub use outbox::MockOutbox;
#[cfg(feature = "mocks")]
pub use remediation::MockRemediationWriter;
#[cfg(feature = "mocks")]
pub use storm::{MockStormCounter, MockWindowStore};
#[cfg(feature = "mocks")]
pub use time::MockClock;
