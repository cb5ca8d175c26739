//! Aggregation windows shared by every replica through the [`WindowStore`] port.
//!
//! The same windows as [`StormDetector`](crate::StormDetector)'s, with the same transitions
//! (`Window::take`, `Window::close`), but stored outside the process: each signal loads its
//! window, applies the transition, and writes it back by compare-and-set, starting over when
//! another replica wrote first. Whichever replica's tick finds a window past its deadline and
//! wins the compare-and-set that deletes it carries out its closing, so each window closes once.
//! Windows outlive the replica that opened them; a replica shutting down leaves them to the others.

use std::sync::Arc;
use std::time::Duration;

use gateway_ports::{Signal, StoreError, StormSettings, Timestamp, WindowStore};

use crate::window::Window;
use crate::{Closure, Decision, Observation, StormType, WindowCapacity, WindowKey};

/// How often a contended compare-and-set is tried before the signal is refused (and resent).
const ATTEMPTS: usize = 32;

/// Open windows in a shared [`WindowStore`].
#[derive(Debug)]
pub struct SharedWindows<S: ?Sized> {
    store: Arc<S>,
    capacity: WindowCapacity,
}

/// The store's name for a window: `namespace/alert name` (namespaces never hold a `/`).
fn name_of(key: &WindowKey) -> String {
    format!("{}/{}", key.namespace, key.alert_name)
}

fn key_of(name: &str) -> Option<WindowKey> {
    let (namespace, alert_name) = name.split_once('/')?;
    Some(WindowKey {
        namespace: namespace.to_owned(),
        alert_name: alert_name.to_owned(),
    })
}

/// How long a stored window may outlive its deadline unclosed (every replica down) before the
/// store drops it: long enough for a replica to come back and close it.
fn ttl(settings: &StormSettings) -> Duration {
    settings.max_window_duration * 2 + Duration::from_secs(3600)
}

fn contended(key: &str) -> StoreError {
    StoreError::Unavailable {
        reason: format!("storm window {key} stayed contended"),
        source: None,
    }
}

impl<S: WindowStore + ?Sized> SharedWindows<S> {
    /// Windows in `store`, each storing at most `capacity` distinct resources.
    pub fn new(store: Arc<S>, capacity: WindowCapacity) -> Self {
        SharedWindows { store, capacity }
    }

    /// Takes one new signal. `storm` is what the shared counts say (see [`crate::classify`]).
    pub async fn observe(
        &self,
        signal: &Signal,
        storm: Option<StormType>,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Result<Observation, StoreError> {
        let key = WindowKey::of(signal);
        let name = name_of(&key);
        for _ in 0..ATTEMPTS {
            let stored = self.store.load(&name).await?;
            let version = stored.as_ref().map(|s| s.version);
            let mut window = stored.and_then(|s| Window::from_bytes(&s.state));
            let mut closed = Vec::new();
            if let Some(open) = window.take_if(|w| now >= w.deadline(settings)) {
                let deadline = open.deadline(settings);
                closed.push(open.close(key.clone(), deadline));
            }
            let (decision, next) = match (window, storm) {
                (Some(mut open), _) => (
                    open.take(key.clone(), signal, settings, now, None),
                    Some(open),
                ),
                (None, Some(storm_type)) => {
                    let mut open = Window::open(signal, storm_type, self.capacity, settings, now);
                    (
                        open.take(key.clone(), signal, settings, now, Some(storm_type)),
                        Some(open),
                    )
                }
                (None, None) => (Decision::Individual, None),
            };
            if version.is_none() && next.is_none() {
                return Ok(Observation { decision, closed });
            }
            let state = next.map(|w| w.to_bytes());
            if self
                .store
                .replace(&name, version, state, ttl(settings))
                .await?
            {
                return Ok(Observation { decision, closed });
            }
        }
        Err(contended(&name))
    }

    /// Windows open in the store (all replicas').
    pub async fn open_windows(&self) -> Result<usize, StoreError> {
        Ok(self.store.keys().await?.len())
    }

    /// Closes every window whose deadline is at or before `now` and that no other replica closed
    /// first.
    pub async fn expire(
        &self,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Result<Vec<Closure>, StoreError> {
        let mut closed = Vec::new();
        for name in self.store.keys().await? {
            let Some(stored) = self.store.load(&name).await? else {
                continue;
            };
            let (Some(window), Some(key)) = (Window::from_bytes(&stored.state), key_of(&name))
            else {
                // Not a window this code can read: drop it rather than trip over it forever.
                self.store
                    .replace(&name, Some(stored.version), None, ttl(settings))
                    .await?;
                continue;
            };
            let deadline = window.deadline(settings);
            if now >= deadline
                && self
                    .store
                    .replace(&name, Some(stored.version), None, ttl(settings))
                    .await?
            {
                closed.push(window.close(key, deadline));
            }
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use gateway_ports::StoredWindow;

    use super::*;
    use crate::test_support::{at, settings, signal, timing};

    /// A store in a map, that can make the next `replace` lose a race.
    #[derive(Default)]
    struct MapStore {
        windows: Mutex<HashMap<String, StoredWindow>>,
        lose_next: Mutex<u32>,
    }

    #[async_trait]
    impl WindowStore for MapStore {
        async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
            Ok(self.windows.lock().unwrap().get(key).cloned())
        }
        async fn replace(
            &self,
            key: &str,
            expected: Option<u64>,
            state: Option<Vec<u8>>,
            _: Duration,
        ) -> Result<bool, StoreError> {
            let mut lose = self.lose_next.lock().unwrap();
            if *lose > 0 {
                *lose -= 1;
                return Ok(false);
            }
            let mut windows = self.windows.lock().unwrap();
            if windows.get(key).map(|w| w.version) != expected {
                return Ok(false);
            }
            match state {
                Some(state) => {
                    let version = expected.map_or(1, |v| v + 1);
                    windows.insert(key.to_owned(), StoredWindow { version, state });
                }
                None => {
                    windows.remove(key);
                }
            }
            Ok(true)
        }
        async fn keys(&self) -> Result<Vec<String>, StoreError> {
            Ok(self.windows.lock().unwrap().keys().cloned().collect())
        }
    }

    fn shared(store: &Arc<MapStore>) -> SharedWindows<MapStore> {
        SharedWindows::new(store.clone(), WindowCapacity::default())
    }

    #[tokio::test]
    async fn two_replicas_fill_one_window_and_one_aggregate_lists_every_resource() {
        let store = Arc::new(MapStore::default());
        let (a, b) = (shared(&store), shared(&store));
        let s = settings(10, 1, 4);
        let storm = Some(StormType::Pattern);
        let mut decisions = Vec::new();
        for n in 0..6u64 {
            let replica = if n % 2 == 0 { &a } else { &b };
            let pod = format!("p{n}");
            decisions.push(
                replica
                    .observe(&signal(n, "A", "prod", &pod), storm, &s, at(n))
                    .await
                    .unwrap()
                    .decision,
            );
        }
        assert!(matches!(
            decisions[0],
            Decision::Buffered {
                storm_started: Some(StormType::Pattern),
                ..
            }
        ));
        assert!(
            matches!(
                decisions[1],
                Decision::Buffered {
                    storm_started: None,
                    ..
                }
            ),
            "b joined a's window"
        );
        let Decision::CreateAggregate { aggregate, .. } = &decisions[3] else {
            panic!("{decisions:?}")
        };
        assert_eq!(aggregate.resources.len(), 4);
        let Decision::Joined { aggregate } = &decisions[5] else {
            panic!("{decisions:?}")
        };
        assert_eq!((aggregate.resources.len(), aggregate.alert_count), (6, 6));
    }

    #[tokio::test]
    async fn a_lost_race_is_retried_and_no_signal_is_lost() {
        let store = Arc::new(MapStore::default());
        let replica = shared(&store);
        let s = settings(10, 1, 100);
        replica
            .observe(
                &signal(0, "A", "prod", "p0"),
                Some(StormType::Rate),
                &s,
                at(0),
            )
            .await
            .unwrap();
        *store.lose_next.lock().unwrap() = 3;
        let decision = replica
            .observe(&signal(1, "A", "prod", "p1"), None, &s, at(1))
            .await
            .unwrap()
            .decision;
        assert!(
            matches!(decision, Decision::Buffered { buffered: 2, .. }),
            "{decision:?}"
        );
    }

    #[tokio::test]
    async fn each_window_is_closed_by_exactly_one_replica() {
        let store = Arc::new(MapStore::default());
        let (a, b) = (shared(&store), shared(&store));
        let s = timing(settings(10, 1, 100), 60, 300);
        a.observe(
            &signal(0, "A", "prod", "p0"),
            Some(StormType::Rate),
            &s,
            at(0),
        )
        .await
        .unwrap();
        b.observe(&signal(1, "A", "prod", "p1"), None, &s, at(1))
            .await
            .unwrap();
        assert!(
            a.expire(&s, at(30)).await.unwrap().is_empty(),
            "not due yet"
        );
        let first = a.expire(&s, at(61)).await.unwrap();
        let second = b.expire(&s, at(61)).await.unwrap();
        assert!(second.is_empty());
        let [Closure::Flush { signals, .. }] = first.as_slice() else {
            panic!("{first:?}")
        };
        assert_eq!(signals.len(), 2, "both replicas' signals come back");
    }

    #[tokio::test]
    async fn a_signal_after_the_deadline_closes_the_window_and_opens_a_new_one() {
        let store = Arc::new(MapStore::default());
        let replica = shared(&store);
        let s = timing(settings(10, 1, 100), 60, 300);
        replica
            .observe(
                &signal(0, "A", "prod", "p0"),
                Some(StormType::Rate),
                &s,
                at(0),
            )
            .await
            .unwrap();
        let observation = replica
            .observe(
                &signal(1, "A", "prod", "p1"),
                Some(StormType::Rate),
                &s,
                at(100),
            )
            .await
            .unwrap();
        assert_eq!(observation.closed.len(), 1);
        assert!(matches!(
            observation.decision,
            Decision::Buffered {
                storm_started: Some(_),
                buffered: 1,
                ..
            }
        ));
    }
}
