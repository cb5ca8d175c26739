//! Slot maps: which primary serves which of the 16384 slots, as one node sees it.

use std::collections::BTreeSet;

use redis::Value;

use super::SLOTS;

/// Which primary serves which slots, as one node sees it (`CLUSTER SLOTS`), ranges in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotMap(Vec<(u16, u16, u16)>);

impl SlotMap {
    /// Parses `CLUSTER SLOTS`: `[[start, end, [ip, port, id, ..], replicas..], ..]`.
    pub(super) fn parse(value: &Value) -> Result<SlotMap, String> {
        let bad = || format!("unexpected CLUSTER SLOTS answer: {value:?}");
        let Value::Array(entries) = value else {
            return Err(bad());
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else {
                return Err(bad());
            };
            let number = |v: Option<&Value>| -> Result<u16, String> {
                v.and_then(|v| redis::from_redis_value_ref::<u16>(v).ok())
                    .ok_or_else(bad)
            };
            let Some(Value::Array(primary)) = fields.get(2) else {
                return Err(bad());
            };
            ranges.push((
                number(fields.first())?,
                number(fields.get(1))?,
                number(primary.get(1))?,
            ));
        }
        ranges.sort_unstable();
        Ok(SlotMap(ranges))
    }

    /// The port of the primary serving `slot`.
    pub(super) fn owner(&self, slot: u16) -> Option<u16> {
        self.0
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, port)| *port)
    }

    /// The slots `port` serves, in order.
    pub(super) fn slots_of(&self, port: u16) -> Vec<u16> {
        self.0
            .iter()
            .filter(|(_, _, owner)| *owner == port)
            .flat_map(|(start, end, _)| *start..=*end)
            .collect()
    }

    /// The primaries serving any slot.
    pub(super) fn owners(&self) -> BTreeSet<u16> {
        self.0.iter().map(|(_, _, port)| *port).collect()
    }

    /// The first slot nobody serves.
    pub(super) fn first_unserved(&self) -> Option<u16> {
        let mut next: u32 = 0;
        for (start, end, _) in &self.0 {
            if u32::from(*start) > next {
                break;
            }
            next = next.max(u32::from(*end) + 1);
        }
        u16::try_from(next).ok().filter(|slot| *slot < SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::SlotMap;

    #[test]
    fn slot_maps_find_owners_and_gaps() {
        let map = SlotMap(vec![(0, 99, 7001), (100, 16383, 7002)]);
        assert_eq!(map.owner(0), Some(7001));
        assert_eq!(map.owner(100), Some(7002));
        assert_eq!(map.slots_of(7001), (0..100).collect::<Vec<u16>>());
        assert_eq!(map.first_unserved(), None);
        assert_eq!(
            SlotMap(vec![(0, 99, 1), (101, 16383, 2)]).first_unserved(),
            Some(100)
        );
        assert_eq!(SlotMap(vec![(0, 16382, 1)]).first_unserved(), Some(16383));
        assert_eq!(SlotMap(vec![]).first_unserved(), Some(0));
    }
}
