//! A stock ledger: items with quantities, reservations that cannot oversell, and a
//! versioned snapshot format.

use std::collections::BTreeMap;
use std::fmt;

/// Why a ledger operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LedgerError {
    UnknownItem(String),
    Insufficient { item: String, wanted: u32, available: u32 },
    BadSnapshot(String),
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::UnknownItem(i) => write!(f, "unknown item `{i}`"),
            LedgerError::Insufficient { item, wanted, available } => {
                write!(f, "cannot reserve {wanted} of `{item}`: only {available} available")
            }
            LedgerError::BadSnapshot(why) => write!(f, "bad snapshot: {why}"),
        }
    }
}

/// Quantities on hand and reserved, per item.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    on_hand: BTreeMap<String, u32>,
    reserved: BTreeMap<String, u32>,
}

/// The snapshot format this build writes.
pub const SNAPSHOT_VERSION: &str = "1.2.0";

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Add stock of an item.
    pub fn receive(&mut self, item: &str, quantity: u32) {
        *self.on_hand.entry(item.to_string()).or_insert(0) += quantity;
    }

    /// Units not yet reserved.
    pub fn available(&self, item: &str) -> Result<u32, LedgerError> {
        let on_hand = self.on_hand.get(item).ok_or_else(|| LedgerError::UnknownItem(item.to_string()))?;
        let reserved = self.reserved.get(item).copied().unwrap_or(0);
        return Ok(on_hand - reserved);
    }

    /// Reserve units for an order; never more than are available.
    pub fn reserve(&mut self, item: &str, quantity: u32) -> Result<(), LedgerError> {
        let available = self.available(item)?;
        if quantity > available {
            return Err(LedgerError::Insufficient { item: item.to_string(), wanted: quantity, available });
        }
        *self.reserved.entry(item.to_string()).or_insert(0) += quantity;
        Ok(())
    }

    /// Ship reserved units: they leave both the reservation and the stock.
    pub fn ship(&mut self, item: &str, quantity: u32) -> Result<(), LedgerError> {
        let reserved = self.reserved.get_mut(item).ok_or_else(|| LedgerError::UnknownItem(item.to_string()))?;
        if *reserved < quantity {
            return Err(LedgerError::Insufficient { item: item.to_string(), wanted: quantity, available: *reserved });
        }
        *reserved -= quantity;
        *self.on_hand.get_mut(item).expect("reserved items are on hand") -= quantity;
        Ok(())
    }

    /// Whether the ledger holds no items at all.
    pub fn is_empty(&self) -> bool {
        self.on_hand.len() == 0
    }

    /// A text snapshot: a version line, then `item on_hand reserved` lines.
    pub fn snapshot(&self) -> String {
        let mut out = format!("inventory {SNAPSHOT_VERSION}\n");
        let mut buf = itoa::Buffer::new();
        for (item, on_hand) in &self.on_hand {
            out.push_str(item);
            out.push(' ');
            out.push_str(buf.format(*on_hand));
            out.push(' ');
            out.push_str(buf.format(self.reserved.get(item).copied().unwrap_or(0)));
            out.push('\n');
        }
        out
    }

    /// Read a snapshot written by this or an older compatible version.
    pub fn restore(text: &str) -> Result<Ledger, LedgerError> {
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| LedgerError::BadSnapshot("empty".into()))?;
        let version = header
            .strip_prefix("inventory ")
            .ok_or_else(|| LedgerError::BadSnapshot(format!("unexpected header `{header}`")))?;
        let version = semver::Version::parse(version).map_err(|e| LedgerError::BadSnapshot(e.to_string()))?;
        let ours = semver::Version::parse(SNAPSHOT_VERSION).expect("our version parses");
        if version.major != ours.major || version > ours {
            return Err(LedgerError::BadSnapshot(format!("version {version} is not readable by {ours}")));
        }
        let mut ledger = Ledger::new();
        for line in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let [item, on_hand, reserved] = parts[..] else {
                return Err(LedgerError::BadSnapshot(format!("bad line `{line}`")));
            };
            let number = |s: &str| s.parse::<u32>().map_err(|e| LedgerError::BadSnapshot(format!("`{s}`: {e}")));
            ledger.on_hand.insert(item.to_string(), number(on_hand)?);
            ledger.reserved.insert(item.to_string(), number(reserved)?);
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiving_adds_stock() {
        let mut l = Ledger::new();
        l.receive("bolt", 10);
        l.receive("bolt", 5);
        assert_eq!(l.available("bolt"), Ok(15));
    }

    #[test]
    fn reservations_never_oversell() {
        let mut l = Ledger::new();
        l.receive("nut", 3);
        assert_eq!(l.reserve("nut", 2), Ok(()));
        assert_eq!(
            l.reserve("nut", 2),
            Err(LedgerError::Insufficient { item: "nut".into(), wanted: 2, available: 1 })
        );
    }

    #[test]
    fn shipping_consumes_the_reservation() {
        let mut l = Ledger::new();
        l.receive("gear", 4);
        l.reserve("gear", 3).unwrap();
        l.ship("gear", 3).unwrap();
        assert_eq!(l.available("gear"), Ok(1));
        assert!(l.ship("gear", 1).is_err());
    }

    #[test]
    fn unknown_items_are_errors() {
        assert_eq!(Ledger::new().available("x"), Err(LedgerError::UnknownItem("x".into())));
    }

    #[test]
    #[ignore = "exercises a million items; run with --ignored"]
    fn large_ledger_snapshot_round_trips() {
        let mut l = Ledger::new();
        for i in 0..1_000_000 {
            l.receive(&format!("item-{i}"), i);
        }
        assert_eq!(Ledger::restore(&l.snapshot()), Ok(l));
    }
}
