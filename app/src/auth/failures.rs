//! The failure limiter: a peer that fails authentication `--auth-failure-burst` times within
//! `--auth-failure-window` is refused (429) without being checked until that window has passed
//! since the failure that blocked it, so guessing tokens (or hammering a TokenReview-backed
//! gateway) costs the guesser, not the authority.
//!
//! Pure: time is an argument. The table is bounded (`--auth-max-tracked-peers`): at the limit the
//! entry that would expire first (the oldest) makes room. A peer is an IPv4 address or an IPv6
//! /64 (one host commonly holds a whole /64, so its addresses count as one peer).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use tokio::time::Instant;

/// Whom failures are counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// An IPv4 address (an IPv4-mapped IPv6 address included).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
    /// No peer address known (a request handed to the router without the accept loop).
    Unknown,
}

impl PeerKey {
    /// The key of a peer address, if known.
    pub fn of(ip: Option<IpAddr>) -> PeerKey {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => PeerKey::V4(v4),
            Some(IpAddr::V6(v6)) => PeerKey::V6Prefix((v6.to_bits() >> 64) as u64),
            None => PeerKey::Unknown,
        }
    }
}

/// How failures are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures within `window` that block a peer.
    pub burst: NonZeroU32,
    /// How long failures are remembered, and how long a blocked peer stays blocked.
    pub window: Duration,
    /// Peers tracked at most.
    pub max_peers: NonZeroUsize,
}

impl FailureLimits {
    /// Checks the flags' values.
    pub fn new(burst: u32, window: Duration, max_peers: usize) -> Result<Self, String> {
        let burst = NonZeroU32::new(burst).ok_or("--auth-failure-burst must be at least 1")?;
        if window.is_zero() {
            return Err("--auth-failure-window must be above 0".to_owned());
        }
        let max_peers =
            NonZeroUsize::new(max_peers).ok_or("--auth-max-tracked-peers must be at least 1")?;
        Ok(FailureLimits {
            burst,
            window,
            max_peers,
        })
    }
}

impl Default for FailureLimits {
    /// The flags' defaults.
    fn default() -> Self {
        FailureLimits {
            burst: NonZeroU32::MIN.saturating_add(9),
            window: Duration::from_secs(10),
            max_peers: NonZeroUsize::MIN.saturating_add(9_999),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// The first failure counted in this window.
    first: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    /// Its key in `FailureLimiter::order`.
    order: (Instant, u64),
}

/// Failures per peer, bounded. See the [module documentation](self).
#[derive(Debug)]
pub struct FailureLimiter {
    limits: FailureLimits,
    peers: HashMap<PeerKey, Entry>,
    /// Entries by the instant they expire (then by age): the first is the oldest.
    order: BTreeMap<(Instant, u64), PeerKey>,
    next: u64,
}

impl FailureLimiter {
    /// An empty table.
    pub fn new(limits: FailureLimits) -> Self {
        FailureLimiter {
            limits,
            peers: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// How long `peer` is still refused at `now`, if it is.
    pub fn blocked(&self, peer: PeerKey, now: Instant) -> Option<Duration> {
        self.peers
            .get(&peer)
            .and_then(|e| e.blocked_until)
            .filter(|&until| until > now)
            .map(|until| until - now)
    }

    /// Counts a failure of `peer` at `now`; returns whether it blocks the peer (from now on, for
    /// the window). A peer already blocked stays blocked as long as it was.
    pub fn failed(&mut self, peer: PeerKey, now: Instant) -> bool {
        self.sweep(now);
        let window = self.limits.window;
        let burst = self.limits.burst.get();
        if !self.peers.contains_key(&peer)
            && self.peers.len() >= self.limits.max_peers.get()
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.peers.remove(&oldest);
        }
        let key = self.key(now + window);
        let entry = self.peers.entry(peer).or_insert_with(|| Entry {
            first: now,
            failures: 0,
            blocked_until: None,
            order: key,
        });
        if entry.blocked_until.is_some() {
            return false;
        }
        entry.failures += 1;
        let expires = if entry.failures >= burst {
            let until = now + window;
            entry.blocked_until = Some(until);
            until
        } else {
            entry.first + window
        };
        let blocked = entry.blocked_until.is_some();
        let old = entry.order;
        let new = if old.0 == expires { old } else { key };
        entry.order = new;
        if old != new {
            self.order.remove(&old);
        }
        self.order.insert(new, peer);
        blocked
    }

    fn key(&mut self, expires: Instant) -> (Instant, u64) {
        self.next += 1;
        (expires, self.next)
    }

    /// Forgets every entry expired at `now`: its window passed with fewer failures than the
    /// burst, or its block ended.
    fn sweep(&mut self, now: Instant) {
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let peer = entry.remove();
            self.peers.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: u32, window_secs: u64, max_peers: usize) -> FailureLimits {
        FailureLimits::new(burst, Duration::from_secs(window_secs), max_peers).unwrap()
    }

    fn peer(n: u8) -> PeerKey {
        PeerKey::of(Some(IpAddr::from([10, 0, 0, n])))
    }

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // an origin for arithmetic, not a decision
        Instant::now()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_within_the_window_blocks_for_the_window_then_recovers() {
        let t = t0();
        let mut limiter = FailureLimiter::new(limits(3, 10, 100));
        assert!(!limiter.failed(peer(1), t));
        assert!(!limiter.failed(peer(1), t + S));
        assert_eq!(limiter.blocked(peer(1), t + S), None);
        assert!(
            limiter.failed(peer(1), t + 2 * S),
            "the third failure blocks"
        );
        assert_eq!(limiter.blocked(peer(1), t + 2 * S), Some(10 * S));
        assert_eq!(limiter.blocked(peer(1), t + 5 * S), Some(7 * S));
        assert!(!limiter.failed(peer(1), t + 5 * S), "already blocked");
        assert_eq!(
            limiter.blocked(peer(1), t + 5 * S),
            Some(7 * S),
            "a failure while blocked does not extend it"
        );
        assert_eq!(
            limiter.blocked(peer(2), t + 5 * S),
            None,
            "other peers are free"
        );
        assert_eq!(
            limiter.blocked(peer(1), t + 12 * S),
            None,
            "the window passed"
        );
        assert!(!limiter.failed(peer(1), t + 12 * S), "counting starts over");
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_block() {
        let t = t0();
        let mut limiter = FailureLimiter::new(limits(3, 10, 100));
        for i in 0..20 {
            assert!(!limiter.failed(peer(1), t + i * 6 * S), "failure {i}");
        }
    }

    #[test]
    fn a_burst_of_one_blocks_at_the_first_failure() {
        let t = t0();
        let mut limiter = FailureLimiter::new(limits(1, 10, 100));
        assert!(limiter.failed(peer(1), t));
        assert_eq!(limiter.blocked(peer(1), t), Some(10 * S));
    }

    #[test]
    fn the_table_is_bounded_and_the_oldest_goes_first() {
        let t = t0();
        let mut limiter = FailureLimiter::new(limits(2, 10, 3));
        for n in 0..3 {
            limiter.failed(peer(n), t + u32::from(n) * S);
        }
        limiter.failed(peer(9), t + 4 * S);
        assert_eq!(limiter.tracked(), 3);
        assert!(!limiter.peers.contains_key(&peer(0)), "the oldest went");
        assert!(limiter.failed(peer(1), t + 5 * S), "the others still count");
        for n in 10..200 {
            limiter.failed(peer(n), t + 6 * S);
            assert!(limiter.tracked() <= 3);
            assert_eq!(limiter.order.len(), limiter.tracked());
        }
    }

    #[test]
    fn expired_entries_are_forgotten() {
        let t = t0();
        let mut limiter = FailureLimiter::new(limits(5, 10, 100));
        for n in 0..50 {
            limiter.failed(peer(n), t);
        }
        limiter.failed(peer(99), t + 11 * S);
        assert_eq!(limiter.tracked(), 1);
        assert_eq!(limiter.order.len(), 1);
    }

    #[test]
    fn peers_are_ipv4_addresses_and_ipv6_prefixes() {
        let v6 = |s: &str| PeerKey::of(Some(s.parse().unwrap()));
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:1"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
        assert_eq!(v6("::ffff:10.0.0.1"), peer(1));
        assert_ne!(peer(1), peer(2));
        assert_eq!(PeerKey::of(None), PeerKey::Unknown);
    }

    #[test]
    fn limits_refuse_zeroes_naming_the_flag() {
        assert!(
            FailureLimits::new(0, S, 1)
                .unwrap_err()
                .contains("--auth-failure-burst")
        );
        assert!(
            FailureLimits::new(1, Duration::ZERO, 1)
                .unwrap_err()
                .contains("--auth-failure-window")
        );
        assert!(
            FailureLimits::new(1, S, 0)
                .unwrap_err()
                .contains("--auth-max-tracked-peers")
        );
        assert_eq!(
            FailureLimits::new(10, 10 * S, 10_000),
            Ok(FailureLimits::default())
        );
    }
}
