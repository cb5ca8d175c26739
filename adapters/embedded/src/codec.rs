//! The tables of the database and their rows as bytes (fixed-width big-endian integers,
//! length-prefixed byte strings). Decoding checks every length, so a damaged row is an error,
//! never a panic.

use std::time::Duration;

use gateway_ports::{DedupWindow, StormHistory, Timestamp, WindowSlot};
use redb::{Database, ReadableTable, TableDefinition};

use crate::writer::Failure;

/// Dedup windows: fingerprint → sequence + [`DedupWindow`].
pub(crate) const DEDUP: TableDefinition<&str, &[u8]> = TableDefinition::new("dedup");
/// Dedup windows in the order they were opened: sequence → fingerprint.
pub(crate) const DEDUP_ORDER: TableDefinition<u64, &str> = TableDefinition::new("dedup_order");
/// Storm counts: alert name → sequence + [`StormHistory`].
pub(crate) const STORM: TableDefinition<&str, &[u8]> = TableDefinition::new("storm");
/// Alert names in the order they were last counted: sequence → alert name.
pub(crate) const STORM_ORDER: TableDefinition<u64, &str> = TableDefinition::new("storm_order");
/// Storm windows: key → [`WindowSlot`].
pub(crate) const WINDOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("windows");
/// The outbox: key → version + entry.
pub(crate) const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// Counters that must never go back, even across restarts: name → last value given out.
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The counter of outbox versions (in [`COUNTERS`]).
pub(crate) const OUTBOX_VERSION: &str = "outbox_version";

/// Creates every table (so read transactions find them) and returns the first sequence number
/// no order table holds.
pub(crate) fn prepare(database: &Database) -> Result<u64, redb::Error> {
    let transaction = database.begin_write()?;
    let mut next_sequence = 0;
    {
        transaction.open_table(DEDUP)?;
        transaction.open_table(STORM)?;
        transaction.open_table(WINDOWS)?;
        transaction.open_table(OUTBOX)?;
        transaction.open_table(COUNTERS)?;
        for order in [DEDUP_ORDER, STORM_ORDER] {
            let table = transaction.open_table(order)?;
            if let Some((last, _)) = table.last()? {
                next_sequence = next_sequence.max(last.value() + 1);
            }
        }
    }
    transaction.commit()?;
    Ok(next_sequence)
}

/// Appends integers and byte strings.
#[derive(Debug, Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(crate) fn bytes(self, bytes: &[u8]) -> Self {
        let mut this = self.u64(bytes.len() as u64);
        this.0.extend_from_slice(bytes);
        this
    }

    /// The rest of the row, unprefixed.
    pub(crate) fn tail(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads what [`Writer`] wrote.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of a row of `what` (named in errors).
    pub(crate) fn new(what: &'static str, row: &'a [u8]) -> Self {
        Reader { what, rest: row }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Failure> {
        if self.rest.len() < n {
            return Err(Failure::Corrupt(format!(
                "a {} row ends {} bytes short",
                self.what,
                n - self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Failure> {
        let mut n = [0; 8];
        n.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(n))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Failure> {
        let len = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        self.take(len)
    }

    pub(crate) fn text(&mut self) -> Result<String, Failure> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Failure::Corrupt(format!("a {} row holds invalid UTF-8", self.what)))
    }

    /// The rest of the row.
    pub(crate) fn tail(self) -> &'a [u8] {
        self.rest
    }

    /// Fails unless the row was read to its end.
    pub(crate) fn end(self) -> Result<(), Failure> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Failure::Corrupt(format!(
                "a {} row has {} bytes too many",
                self.what,
                self.rest.len()
            )))
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn encode_dedup(window: &DedupWindow) -> Vec<u8> {
    Writer::default()
        .u64(window.start.as_millis())
        .u64(millis(window.ttl))
        .u64(window.count)
        // 0: settled; else the claim's time plus one (a claim at the epoch is not "settled").
        .u64(
            window
                .claimed
                .map_or(0, |t| t.as_millis().saturating_add(1)),
        )
        .finish()
}

pub(crate) fn decode_dedup(row: &[u8]) -> Result<DedupWindow, Failure> {
    let mut r = Reader::new("dedup", row);
    let window = DedupWindow {
        start: Timestamp::from_millis(r.u64()?),
        ttl: Duration::from_millis(r.u64()?),
        count: r.u64()?,
        claimed: match r.u64()? {
            0 => None,
            at => Some(Timestamp::from_millis(at - 1)),
        },
    };
    r.end()?;
    Ok(window)
}

pub(crate) fn encode_history(history: &StormHistory) -> Vec<u8> {
    let mut w = Writer::default().u64(history.last().as_millis());
    let signals: Vec<Timestamp> = history.signals().collect();
    w = w.u64(signals.len() as u64);
    for t in signals {
        w = w.u64(t.as_millis());
    }
    let resources: Vec<(&str, Timestamp)> = history.resources().collect();
    w = w.u64(resources.len() as u64);
    for (member, hit) in resources {
        w = w.u64(hit.as_millis()).bytes(member.as_bytes());
    }
    w.finish()
}

pub(crate) fn decode_history(row: &[u8]) -> Result<StormHistory, Failure> {
    let mut r = Reader::new("storm", row);
    let last = Timestamp::from_millis(r.u64()?);
    let mut signals = Vec::new();
    for _ in 0..r.u64()? {
        signals.push(Timestamp::from_millis(r.u64()?));
    }
    let mut resources = Vec::new();
    for _ in 0..r.u64()? {
        let hit = Timestamp::from_millis(r.u64()?);
        resources.push((r.text()?, hit));
    }
    r.end()?;
    Ok(StormHistory::from_parts(last, signals, resources))
}

pub(crate) fn encode_slot(slot: &WindowSlot) -> Vec<u8> {
    let w = Writer::default()
        .u64(slot.version)
        .u64(slot.expires.as_millis());
    match &slot.state {
        Some(state) => w.u64(1).tail(state),
        None => w.u64(0),
    }
    .finish()
}

pub(crate) fn decode_slot(row: &[u8]) -> Result<WindowSlot, Failure> {
    let mut r = Reader::new("window", row);
    let version = r.u64()?;
    let expires = Timestamp::from_millis(r.u64()?);
    let state = match r.u64()? {
        0 => {
            r.end()?;
            None
        }
        _ => Some(r.tail().to_vec()),
    };
    Ok(WindowSlot {
        version,
        state,
        expires,
    })
}

pub(crate) fn encode_outbox(version: u64, entry: &[u8]) -> Vec<u8> {
    Writer::default().u64(version).tail(entry).finish()
}

/// The version of an outbox row and its entry.
pub(crate) fn decode_outbox(row: &[u8]) -> Result<(u64, &[u8]), Failure> {
    let mut r = Reader::new("outbox", row);
    let version = r.u64()?;
    Ok((version, r.tail()))
}

#[cfg(test)]
mod tests {
    use gateway_ports::Counting;

    use super::*;

    #[test]
    fn rows_read_back_as_written() {
        let window = DedupWindow {
            start: Timestamp::from_secs(7),
            ttl: Duration::from_secs(300),
            count: 3,
            claimed: None,
        };
        assert_eq!(decode_dedup(&encode_dedup(&window)).unwrap(), window);

        let mut history = StormHistory::default();
        let counting = Counting {
            rate_window: Duration::from_secs(60),
            pattern_window: Duration::from_secs(120),
            max_tracked: 100,
        };
        for (n, member) in ["a", "b{}:\n", "a"].into_iter().enumerate() {
            history.record(member, Timestamp::from_secs(n as u64), counting);
        }
        assert_eq!(decode_history(&encode_history(&history)).unwrap(), history);

        for state in [None, Some(Vec::new()), Some(vec![0, 1, 255])] {
            let slot = WindowSlot {
                version: 9,
                state,
                expires: Timestamp::from_secs(60),
            };
            assert_eq!(decode_slot(&encode_slot(&slot)).unwrap(), slot);
        }

        assert_eq!(
            decode_outbox(&encode_outbox(4, b"entry")).unwrap(),
            (4, &b"entry"[..])
        );
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let row = encode_dedup(&DedupWindow {
            start: Timestamp::from_secs(7),
            ttl: Duration::from_secs(300),
            count: 3,
            claimed: None,
        });
        for cut in 0..row.len() {
            assert!(decode_dedup(&row[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = row.clone();
        long.push(0);
        assert!(decode_dedup(&long).is_err());
        let mut huge = Writer::default().u64(0).u64(u64::MAX).finish();
        huge.extend_from_slice(&[0; 16]);
        assert!(decode_history(&huge).is_err());
        assert!(decode_outbox(&[1, 2]).is_err());
        assert!(decode_slot(&[0; 17]).is_err());
    }
}
