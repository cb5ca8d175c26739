//! The [`DedupStore`] port: one row per fingerprint's window ([`DedupWindow`], the ports'
//! arithmetic), bounded in order of first occurrence; expired windows swept.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{DedupStore, DedupWindow, Fingerprint, Seen, StoreError, Timestamp};

use crate::bounded::Bounded;
use crate::codec::{self, DEDUP, DEDUP_ORDER};
use crate::writer::{Batch, Failure};
use crate::{EmbeddedStore, writer};

/// Drops every window that no longer holds at `now`.
fn sweep(table: &mut Bounded<'_>, now: Timestamp) -> Result<u64, Failure> {
    table.retain(|row| Ok(codec::decode_dedup(row)?.is_live(now)))
}

fn record(
    batch: &mut Batch<'_>,
    fingerprint: &str,
    ttl: Duration,
    now: Timestamp,
) -> Result<Seen, Failure> {
    let mut table = Bounded::open(batch.transaction, DEDUP, DEDUP_ORDER)?;
    if batch.state.dedup_sweep.due() {
        let held = sweep(&mut table, now)?;
        batch.state.dedup_sweep.swept(held);
    }
    let previous = table.get(fingerprint)?;
    let window = previous
        .as_ref()
        .map(|row| codec::decode_dedup(&row.payload))
        .transpose()?;
    let (window, seen) = DedupWindow::record(window, now, ttl);
    let sequence = match (seen, previous) {
        (Seen::Duplicate { .. } | Seen::Claimed { .. }, Some(row)) => row.sequence,
        // A window opened again takes a new place in the order; a new fingerprint needs room.
        (_, previous) => {
            if previous.is_none() {
                let capacity = batch.options.dedup_capacity.get();
                let live =
                    table.make_room(capacity, |row| Ok(codec::decode_dedup(row)?.is_live(now)))?;
                batch.stats.dedup_evicted.fetch_add(live, Ordering::Relaxed);
            }
            batch.state.sequence()
        }
    };
    table.put(fingerprint, sequence, &codec::encode_dedup(&window))?;
    Ok(seen)
}

#[async_trait]
impl DedupStore for EmbeddedStore {
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError> {
        let fingerprint = fingerprint.as_str().to_owned();
        self.write(move |batch| record(batch, &fingerprint, ttl, now))
            .await
    }

    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        let fingerprint = fingerprint.as_str().to_owned();
        self.write(move |batch| {
            Bounded::open(batch.transaction, DEDUP, DEDUP_ORDER)?.remove(&fingerprint)?;
            Ok(())
        })
        .await
    }

    async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError> {
        let fingerprint = fingerprint.as_str().to_owned();
        self.write(move |batch| {
            let mut table = Bounded::open(batch.transaction, DEDUP, DEDUP_ORDER)?;
            if let Some(row) = table.get(&fingerprint)?
                && codec::decode_dedup(&row.payload)?.claimed == Some(claimed_at)
            {
                table.remove(&fingerprint)?;
            }
            Ok(())
        })
        .await
    }

    /// Queued, not committed, when it returns: a new alert's answer does not wait for one more
    /// commit. Any later `record` of the fingerprint is applied after it, so it reads the
    /// window settled; if its batch fails, the claim stays until it is taken over
    /// ([`gateway_ports::DedupWindow::CLAIM`]), as after a failed settle.
    async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        let fingerprint = fingerprint.as_str().to_owned();
        self.writer
            .submit_queued("a settled dedup claim", move |batch| {
                let mut table = Bounded::open(batch.transaction, DEDUP, DEDUP_ORDER)?;
                if let Some(row) = table.get(&fingerprint)? {
                    let window = codec::decode_dedup(&row.payload)?.settled();
                    table.put(&fingerprint, row.sequence, &codec::encode_dedup(&window))?;
                }
                Ok(())
            })
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        if self.writer.is_running() {
            Ok(())
        } else {
            Err(writer::stopped())
        }
    }
}
