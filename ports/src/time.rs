//! Time, as the domain sees it: a wall-clock instant that comes in through the [`Clock`] port.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock instant with millisecond resolution, counted from the Unix epoch.
///
/// The domain never asks the operating system for the time; it receives a `Timestamp` from a
/// [`Clock`] or as an argument, which makes every time-dependent decision reproducible in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// An instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// An instant `secs` seconds after the Unix epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Converts a `SystemTime`; instants before the epoch become the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp(millis)
    }

    /// The same instant as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The last instant RFC 3339 can write (its years have four digits).
    const LAST_RFC3339: Timestamp = Timestamp(253_402_300_799_999);

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-25T17:00:00.123Z`. An instant
    /// past the year 9999 (only saturated arithmetic makes one) is written as its last
    /// millisecond, `9999-12-31T23:59:59.999Z`, never a panic.
    pub fn to_rfc3339(self) -> String {
        let t = self.min(Self::LAST_RFC3339);
        humantime::format_rfc3339_millis(t.to_system_time()).to_string()
    }

    /// Parses an RFC 3339 timestamp (`2026-11-25T17:00:00Z`, fractional seconds allowed).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        humantime::parse_rfc3339_weak(s)
            .ok()
            .map(Self::from_system_time)
    }
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(rhs)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(rhs)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// An RFC 3339 string, as a `Timestamp` serialises ([`Timestamp::to_rfc3339`]).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
        })
    }
}

/// The source of the current time.
///
/// Contract: `now` never goes backwards by more than the operating system's own clock does; the
/// domain tolerates small steps back (it uses saturating arithmetic) but never calls the OS itself.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_millisecond_precision() {
        let t = Timestamp::from_millis(1_764_090_000_123);
        assert_eq!(t.to_rfc3339(), "2025-11-25T17:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
    }

    #[test]
    fn parses_alertmanager_style_timestamps() {
        let t = Timestamp::parse_rfc3339("2025-11-25T17:00:00Z").unwrap();
        assert_eq!(t, Timestamp::from_secs(1_764_090_000));
        assert!(Timestamp::parse_rfc3339("not a time").is_none());
    }

    #[test]
    fn an_instant_past_the_year_9999_renders_as_its_last_millisecond() {
        let saturated = Timestamp::from_secs(1) + Duration::MAX;
        assert_eq!(saturated.to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp::parse_rfc3339(&saturated.to_rfc3339()),
            Some(Timestamp::LAST_RFC3339)
        );
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Timestamp::EPOCH - Duration::from_secs(5), Timestamp::EPOCH);
        assert_eq!(
            Timestamp::from_secs(1).saturating_since(Timestamp::from_secs(2)),
            Duration::ZERO
        );
    }

    #[cfg(feature = "schema")]
    #[test]
    fn the_schema_is_an_rfc3339_string() {
        let schema = schemars::schema_for!(Timestamp);
        assert_eq!(schema.get("type"), Some(&"string".into()));
        assert_eq!(schema.get("format"), Some(&"date-time".into()));
    }
}
