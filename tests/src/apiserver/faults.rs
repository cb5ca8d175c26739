//! Fault injection: which requests fail, and how.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::lock;

/// What happens to a faulted request, instead of (or before) its normal handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with a `Retry-After` header and a `TooManyRequests` Status whose
    /// `details.retryAfterSeconds` carries the same value (kube-rs drops response headers of
    /// failed requests, so the Status is where a client sees it).
    TooManyRequests {
        /// Seconds, in the header and the Status.
        retry_after_secs: u64,
    },
    /// That HTTP code with a Status body: 500 `InternalError`, 503 `ServiceUnavailable`,
    /// 504 `Timeout`, 409 `Conflict`, … (the reason the real API gives for the code).
    Status(u16),
    /// Waits this long, then handles the request normally.
    Slow(Duration),
    /// Closes the connection without writing any response.
    Drop,
}

impl Fault {
    /// A short label, as in [`super::Recorded::fault`]: `TooManyRequests(2s)`, `Status(503)`,
    /// `Slow(200ms)`, `Drop`.
    pub fn label(&self) -> String {
        match self {
            Fault::TooManyRequests { retry_after_secs } => {
                format!("TooManyRequests({retry_after_secs}s)")
            }
            Fault::Status(code) => format!("Status({code})"),
            Fault::Slow(d) => format!("Slow({}ms)", d.as_millis()),
            Fault::Drop => "Drop".to_owned(),
        }
    }
}

/// Which requests a fault rule applies to. `None` matches anything.
///
/// `verb` is the RBAC verb (`create`, `get`, `list`, `watch`, `update`, `patch`, `delete`,
/// `deletecollection`; discovery requests are `get`). `resource` is the plural
/// (`remediationrequests`, `configmaps`), which matches the resource and its subresources, or
/// `remediationrequests/status`, which matches the subresource only; discovery requests have
/// the resource `""`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// The RBAC verb.
    pub verb: Option<&'static str>,
    /// The resource (plural), optionally `/subresource`.
    pub resource: Option<&'static str>,
}

impl Filter {
    /// Every request (discovery included).
    pub const fn any() -> Filter {
        Filter {
            verb: None,
            resource: None,
        }
    }

    /// Requests with this RBAC verb.
    pub const fn verb(verb: &'static str) -> Filter {
        Filter {
            verb: Some(verb),
            resource: None,
        }
    }

    /// Requests on this resource.
    pub const fn resource(resource: &'static str) -> Filter {
        Filter {
            verb: None,
            resource: Some(resource),
        }
    }

    /// This filter, narrowed to a resource: `Filter::verb("create").on("remediationrequests")`.
    pub const fn on(self, resource: &'static str) -> Filter {
        Filter {
            verb: self.verb,
            resource: Some(resource),
        }
    }

    /// Whether a request with this verb, resource and subresource matches.
    pub fn matches(&self, verb: &str, resource: &str, subresource: Option<&str>) -> bool {
        let verb_ok = self.verb.is_none_or(|v| v == verb);
        let resource_ok = self.resource.is_none_or(|r| match r.split_once('/') {
            Some((res, sub)) => res == resource && subresource == Some(sub),
            None => r == resource,
        });
        verb_ok && resource_ok
    }
}

/// The server's fault switchboard: deterministic rules (`fail_next`) first, in the order they
/// were added, then the seeded random rule (`set_rate`).
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Rules>,
    injected: AtomicUsize,
}

#[derive(Debug, Default)]
struct Rules {
    next: Vec<NextRule>,
    rate: Option<RateRule>,
}

#[derive(Debug)]
struct NextRule {
    left: usize,
    fault: Fault,
    filter: Filter,
}

#[derive(Debug)]
struct RateRule {
    rate: f64,
    faults: Vec<Fault>,
    filter: Filter,
    rng: SplitMix64,
}

impl Faults {
    /// The next `n` requests matching `filter` get `fault` (added after earlier rules).
    pub fn fail_next(&self, n: usize, fault: Fault, filter: Filter) {
        if n == 0 {
            return;
        }
        lock(&self.rules).next.push(NextRule {
            left: n,
            fault,
            filter,
        });
    }

    /// From now on, each request matching `filter` (and no `fail_next` rule) is faulted with
    /// probability `rate`, with a fault picked from `faults`; the draws come from a PRNG seeded
    /// with `seed`, so the same requests in the same order get the same faults. Replaces an
    /// earlier rate rule.
    pub fn set_rate(&self, rate: f64, faults: Vec<Fault>, filter: Filter, seed: u64) {
        let rule = (!faults.is_empty() && rate > 0.0).then(|| RateRule {
            rate: rate.min(1.0),
            faults,
            filter,
            rng: SplitMix64(seed),
        });
        lock(&self.rules).rate = rule;
    }

    /// Removes every rule (the `injected` count stays).
    pub fn clear(&self) {
        let mut rules = lock(&self.rules);
        rules.next.clear();
        rules.rate = None;
    }

    /// How many faults fired so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// The fault for this request, if any (counted as injected).
    pub(crate) fn pick(
        &self,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
    ) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        let fault = if let Some(i) = rules
            .next
            .iter()
            .position(|r| r.filter.matches(verb, resource, subresource))
        {
            let rule = &mut rules.next[i];
            rule.left -= 1;
            let fault = rule.fault.clone();
            if rule.left == 0 {
                rules.next.remove(i);
            }
            Some(fault)
        } else if let Some(rule) = rules
            .rate
            .as_mut()
            .filter(|r| r.filter.matches(verb, resource, subresource))
        {
            let draw = rule.rng.next_f64();
            let which = rule.rng.next_u64();
            (draw < rule.rate).then(|| {
                let i = usize::try_from(which % rule.faults.len() as u64).unwrap_or(0);
                rule.faults[i].clone()
            })
        } else {
            None
        };
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// SplitMix64: small, seedable, good enough to pick faults.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
