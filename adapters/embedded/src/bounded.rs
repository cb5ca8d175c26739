//! [`Bounded`]: a table of rows kept in an order (a sequence number per row, and an order table
//! from sequence to key), so the oldest row can go when the table is full. The dedup table (in
//! order of first occurrence) and the storm table (in order of last count) share it.
//!
//! Invariant: every row has exactly one entry in the order table, under the sequence stored at
//! the start of the row.

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

use crate::codec::{Reader, Writer};
use crate::writer::Failure;

/// A bounded table and its order, open in one write transaction.
pub(crate) struct Bounded<'t> {
    rows: Table<'t, &'static str, &'static [u8]>,
    order: Table<'t, u64, &'static str>,
}

/// A row: its sequence and what its owner stored.
#[derive(Debug)]
pub(crate) struct Row {
    pub sequence: u64,
    pub payload: Vec<u8>,
}

impl<'t> Bounded<'t> {
    /// Opens `rows` and its `order` in `transaction`.
    pub(crate) fn open(
        transaction: &'t WriteTransaction,
        rows: TableDefinition<'static, &'static str, &'static [u8]>,
        order: TableDefinition<'static, u64, &'static str>,
    ) -> Result<Self, Failure> {
        Ok(Bounded {
            rows: transaction.open_table(rows)?,
            order: transaction.open_table(order)?,
        })
    }

    /// The row under `key`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Row>, Failure> {
        match self.rows.get(key)? {
            Some(row) => Ok(Some(split(row.value())?)),
            None => Ok(None),
        }
    }

    /// Stores `payload` under `key` at `sequence` in the order (a row's earlier place is left).
    pub(crate) fn put(&mut self, key: &str, sequence: u64, payload: &[u8]) -> Result<(), Failure> {
        let previous = self.get(key)?.map(|row| row.sequence);
        if previous != Some(sequence) {
            if let Some(previous) = previous {
                self.order.remove(previous)?;
            }
            self.order.insert(sequence, key)?;
        }
        let row = Writer::default().u64(sequence).tail(payload).finish();
        self.rows.insert(key, row.as_slice())?;
        Ok(())
    }

    /// Removes the row under `key`; returns its payload.
    pub(crate) fn remove(&mut self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        let Some(row) = self
            .rows
            .remove(key)?
            .map(|row| split(row.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        self.order.remove(row.sequence)?;
        Ok(Some(row.payload))
    }

    /// Rows held.
    pub(crate) fn len(&self) -> Result<u64, Failure> {
        Ok(self.rows.len()?)
    }

    /// Removes the oldest rows until fewer than `capacity` are held; returns how many of them
    /// `is_live` says still held something (a row that does not decode counts as not live).
    pub(crate) fn make_room(
        &mut self,
        capacity: usize,
        is_live: impl Fn(&[u8]) -> Result<bool, Failure>,
    ) -> Result<u64, Failure> {
        let mut live = 0;
        while self.len()? >= capacity as u64 {
            let Some((_, key)) = self.order.pop_first()? else {
                break;
            };
            let key = key.value().to_owned();
            if let Some(row) = self.rows.remove(key.as_str())?
                && is_live(&split(row.value())?.payload).unwrap_or(false)
            {
                live += 1;
            }
        }
        Ok(live)
    }

    /// Removes every row whose payload `keep` refuses; returns how many rows are left.
    pub(crate) fn retain(
        &mut self,
        mut keep: impl FnMut(&[u8]) -> Result<bool, Failure>,
    ) -> Result<u64, Failure> {
        let mut gone = Vec::new();
        for entry in self.rows.iter()? {
            let (key, row) = entry?;
            if !keep(&split(row.value())?.payload)? {
                gone.push(key.value().to_owned());
            }
        }
        for key in gone {
            self.remove(&key)?;
        }
        self.len()
    }
}

fn split(row: &[u8]) -> Result<Row, Failure> {
    let mut r = Reader::new("bounded", row);
    let sequence = r.u64()?;
    Ok(Row {
        sequence,
        payload: r.tail().to_vec(),
    })
}
