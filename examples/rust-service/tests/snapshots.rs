//! Snapshots written by the ledger read back, and foreign ones are refused.

use inventory_service::{Ledger, LedgerError};

#[test]
fn snapshot_round_trips() {
    let mut l = Ledger::new();
    l.receive("bolt", 7);
    l.reserve("bolt", 2).unwrap();
    let text = l.snapshot();
    assert_eq!(text, "inventory 1.2.0\nbolt 7 2\n");
    assert_eq!(Ledger::restore(&text), Ok(l));
}

#[test]
fn older_minor_versions_are_readable() {
    let l = Ledger::restore("inventory 1.0.3\nnut 1 0\n").unwrap();
    assert_eq!(l.available("nut"), Ok(1));
}

#[test]
fn newer_or_other_major_versions_are_refused() {
    assert!(matches!(Ledger::restore("inventory 2.0.0\n"), Err(LedgerError::BadSnapshot(_))));
    assert!(matches!(Ledger::restore("inventory 1.9.0\n"), Err(LedgerError::BadSnapshot(_))));
}

#[test]
fn garbage_is_refused() {
    assert!(Ledger::restore("").is_err());
    assert!(Ledger::restore("stock 1.0.0\n").is_err());
    assert!(Ledger::restore("inventory 1.2.0\nbolt seven 0\n").is_err());
}
