//! [`DocumentSource`]: a [`Judge`] and a way to read its documents now ([`ReadDocuments`]), as
//! one hot-reloadable [`ConfigSource`] and [`ConfigControl`]. The config directory
//! ([`DirSource`](crate::DirSource)) is one; the app makes the ConfigMap read through the
//! Kubernetes API another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use gateway_ports::{
    ChangeListener, Clock, ConfigControl, ConfigKind, ConfigSource, ConfigStatus, DedupSettings,
    ReloadRecord, RetrySettings, SecuritySettings, StormSettings,
};

use crate::ConfigErrors;
use crate::documents::{DocumentNames, Documents};
use crate::judge::{Judge, ReloadObserver};

/// Why a source's documents could not be read (the API did not answer, a file was unreadable).
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Reads a source's documents as they are now: what `POST /-/reload` (and a watcher that is told
/// only *that* something changed) judges.
#[async_trait]
pub trait ReadDocuments: Send + Sync + 'static {
    /// The documents now, or why they cannot be read (the settings in force then stay).
    async fn read(&self) -> Result<Documents, ReadError>;
}

/// The hot-reloadable settings of documents that `R` reads, judged by one [`Judge`].
///
/// Documents reach the judge two ways, both serialised:
/// - [`reload_now`](ConfigControl::reload_now) reads them with `R` (a watcher that only hears
///   that something changed calls it too);
/// - [`DocumentSource::feed`] hands over documents someone else read (the ConfigMap watch).
///
/// Reads never block (settings live in an arc-swap cell); a judgement swaps in the valid types.
pub struct DocumentSource<R> {
    judge: Judge,
    reader: R,
    /// One read-and-judge at a time, in the order they asked. Held across the read (not only the
    /// judgement), so that documents are judged in the order they were read: a reload that read
    /// the source at t₁ cannot be judged after one that read it at t₂ > t₁ and win over it.
    /// Whatever is judged last therefore was either read last (after every earlier judgement
    /// ended) or fed last by a watch that delivers the source's states in order — the newest.
    turn: tokio::sync::Mutex<()>,
    /// How many feeds were asked for. A reload during whose read a feed arrived judges nothing:
    /// the feed, queued right behind it, carries what the source's own watch saw meanwhile, and
    /// judging the read first could put older settings in force for a moment (a needless
    /// generation, and a revert the audit log would show).
    feeds: AtomicU64,
}

impl<R> std::fmt::Debug for DocumentSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentSource")
            .field("judge", &self.judge)
            .finish_non_exhaustive()
    }
}

impl<R: ReadDocuments> DocumentSource<R> {
    /// Judges the documents the source holds at start-up (read by the caller, who may wait
    /// longer for them than a reload does) with [`Judge::start`]'s rules; `reader` reads them on
    /// every later reload.
    pub fn start(
        reader: R,
        names: DocumentNames,
        documents: &Documents,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        Ok(DocumentSource {
            judge: Judge::start(names, documents, clock)?,
            reader,
            turn: tokio::sync::Mutex::new(()),
            feeds: AtomicU64::new(0),
        })
    }

    /// Judges documents someone else read (a watch's latest state of the source), after any
    /// judgement in progress. Returns the records of the types judged.
    pub async fn feed(&self, documents: &Documents) -> Vec<ReloadRecord> {
        self.feeds.fetch_add(1, Ordering::SeqCst);
        let _turn = self.turn.lock().await;
        self.judge.judge(documents)
    }

    /// What reads the documents.
    pub fn reader(&self) -> &R {
        &self.reader
    }
}

impl<R> DocumentSource<R> {
    /// What the operator should know about the start-up documents (missing ones).
    pub fn warnings(&self) -> &[String] {
        self.judge.warnings()
    }

    /// How the documents are named.
    pub fn names(&self) -> &DocumentNames {
        self.judge.names()
    }
}

impl<R: Send + Sync> ConfigSource for DocumentSource<R> {
    fn storm(&self) -> Arc<StormSettings> {
        self.judge.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.judge.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.judge.retry()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.judge.security()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.judge.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.judge.on_change(listener);
    }
}

#[async_trait]
impl<R: ReadDocuments> ConfigControl for DocumentSource<R> {
    fn status(&self) -> Vec<ConfigStatus> {
        self.judge.status()
    }

    /// Reads the documents with `R` and judges them. A read that fails is logged and changes
    /// nothing (it is not an attempt); one overtaken by a feed yields to it (see `feeds`).
    async fn reload_now(&self) -> Vec<ReloadRecord> {
        let _turn = self.turn.lock().await;
        let feeds = self.feeds.load(Ordering::SeqCst);
        let documents = match self.reader.read().await {
            Ok(documents) => documents,
            Err(e) => {
                tracing::warn!(source = self.names().container(), error = %e, "cannot read the settings documents; keeping the settings in force");
                return Vec::new();
            }
        };
        if self.feeds.load(Ordering::SeqCst) != feeds {
            tracing::debug!(
                source = self.names().container(),
                "newer documents were fed while these were read; judging those instead"
            );
            return Vec::new();
        }
        self.judge.judge(&documents)
    }

    fn on_reload(&self, observer: ReloadObserver) {
        self.judge.on_reload(observer);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use super::*;

    const LABEL: &str = "configmap kubernaut-system/kubernaut-gateway-config";

    fn seed() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("storm.yaml".to_owned(), "rate_threshold: 7\n".to_owned()),
            ("dedup.yaml".to_owned(), "ttl: 10m\n".to_owned()),
            ("retry.yaml".to_owned(), "max_attempts: 3\n".to_owned()),
        ])
    }

    fn with_storm(text: &str) -> Documents {
        let mut data = seed();
        data.insert("storm.yaml".into(), text.into());
        Documents::from_data(&data)
    }

    fn start<R: ReadDocuments>(reader: R) -> DocumentSource<R> {
        DocumentSource::start(
            reader,
            DocumentNames::labelled(LABEL, "key"),
            &Documents::from_data(&seed()),
            Arc::new(crate::NoClock),
        )
        .unwrap()
    }

    /// Reads whatever the test put in it last.
    struct Current(Mutex<Result<Documents, String>>);

    #[async_trait]
    impl ReadDocuments for Arc<Current> {
        async fn read(&self) -> Result<Documents, ReadError> {
            let current = self.0.lock().unwrap().clone();
            current.map_err(Into::into)
        }
    }

    fn current() -> Arc<Current> {
        Arc::new(Current(Mutex::new(Ok(Documents::from_data(&seed())))))
    }

    #[tokio::test]
    async fn identical_documents_fed_or_read_are_not_judged() {
        let source = start(current());
        assert!(source.feed(&Documents::from_data(&seed())).await.is_empty());
        assert!(
            source.reload_now().await.is_empty(),
            "the same documents read"
        );
    }

    #[tokio::test]
    async fn reload_now_reads_the_documents_again() {
        let current = current();
        let source = start(current.clone());
        assert!(source.reload_now().await.is_empty());

        *current.0.lock().unwrap() = Ok(with_storm("rate_threshold: 9\n"));
        let records = source.reload_now().await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(source.storm().rate_threshold.get(), 9);

        *current.0.lock().unwrap() = Err("connection refused".to_owned());
        assert!(
            source.reload_now().await.is_empty(),
            "a failed read changes nothing"
        );
        assert_eq!(source.storm().rate_threshold.get(), 9);
        assert!(
            source.reload_now().await.is_empty(),
            "and is not an attempt either"
        );
    }

    /// While it reads, a watch feeds newer documents; the read returns older ones.
    struct Overtaken {
        source: Mutex<Option<Arc<DocumentSource<Overtaken>>>>,
        feed: Mutex<Option<tokio::task::JoinHandle<Vec<ReloadRecord>>>>,
    }

    #[async_trait]
    impl ReadDocuments for Overtaken {
        async fn read(&self) -> Result<Documents, ReadError> {
            let source = self.source.lock().unwrap().clone().unwrap();
            let feeding = source.clone();
            let feed =
                tokio::spawn(
                    async move { feeding.feed(&with_storm("rate_threshold: 11\n")).await },
                );
            *self.feed.lock().unwrap() = Some(feed);
            // The feed has asked for its turn (it waits for this reload's).
            while source.feeds.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            Ok(with_storm("rate_threshold: 10\n"))
        }
    }

    #[tokio::test]
    async fn a_reload_overtaken_by_a_feed_yields_to_it() {
        let source = Arc::new(start(Overtaken {
            source: Mutex::new(None),
            feed: Mutex::new(None),
        }));
        *source.reader().source.lock().unwrap() = Some(source.clone());
        assert!(
            source.reload_now().await.is_empty(),
            "the fed documents are judged by the feed"
        );
        let feed = source.reader().feed.lock().unwrap().take().unwrap();
        let records = feed.await.unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(source.storm().rate_threshold.get(), 11);
        assert_eq!(source.generation(ConfigKind::Storm), 1);
        // The cycle source → reader → source would outlive the test.
        source.reader().source.lock().unwrap().take();
    }

    /// Every read returns the next version; the earlier a read, the longer it takes.
    struct Versions(AtomicU32);

    #[async_trait]
    impl ReadDocuments for Versions {
        async fn read(&self) -> Result<Documents, ReadError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(u64::from(10 - n.min(10)) * 5)).await;
            Ok(with_storm(&format!("rate_threshold: {n}\n")))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reloads_judge_in_the_order_they_read_and_the_newest_wins() {
        let source = Arc::new(start(Versions(AtomicU32::new(0))));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (seen, watched) = (heard.clone(), Arc::downgrade(&source));
        source.on_change(Box::new(move |_| {
            if let Some(source) = watched.upgrade() {
                seen.lock()
                    .unwrap()
                    .push(source.storm().rate_threshold.get());
            }
        }));
        let reloads: Vec<_> = (0..5)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move { source.reload_now().await })
            })
            .collect();
        for reload in reloads {
            assert_eq!(reload.await.unwrap().len(), 1);
        }
        assert_eq!(*heard.lock().unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(source.storm().rate_threshold.get(), 5);
    }
}
