//! The [`StormCounter`] port: one row per alert name ([`StormHistory`], the ports' arithmetic),
//! bounded in order of last count; names gone quiet swept.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use gateway_ports::{
    Counting, ResourceRef, StoreError, StormCounter, StormCounts, StormHistory, Timestamp,
    resource_member,
};

use crate::EmbeddedStore;
use crate::bounded::Bounded;
use crate::codec::{self, STORM, STORM_ORDER};
use crate::writer::{Batch, Failure};

fn count(
    batch: &mut Batch<'_>,
    alert_name: &str,
    member: &str,
    now: Timestamp,
    counting: Counting,
) -> Result<StormCounts, Failure> {
    let mut table = Bounded::open(batch.transaction, STORM, STORM_ORDER)?;
    if batch.state.storm_sweep.due() {
        let held = table.retain(|row| Ok(!codec::decode_history(row)?.is_quiet(now, counting)))?;
        batch.state.storm_sweep.swept(held);
    }
    let mut history = match table.get(alert_name)? {
        Some(row) => codec::decode_history(&row.payload)?,
        None => {
            let capacity = batch.options.max_alert_names.get();
            let live = table.make_room(capacity, |row| {
                Ok(!codec::decode_history(row)?.is_quiet(now, counting))
            })?;
            batch.stats.names_evicted.fetch_add(live, Ordering::Relaxed);
            StormHistory::default()
        }
    };
    let counts = history.record(member, now, counting);
    let sequence = batch.state.sequence();
    table.put(alert_name, sequence, &codec::encode_history(&history))?;
    Ok(counts)
}

#[async_trait]
impl StormCounter for EmbeddedStore {
    async fn count(
        &self,
        alert_name: &str,
        resource: &ResourceRef,
        now: Timestamp,
        counting: Counting,
    ) -> Result<StormCounts, StoreError> {
        let alert_name = alert_name.to_owned();
        let member = resource_member(resource);
        self.write(move |batch| count(batch, &alert_name, &member, now, counting))
            .await
    }
}
