//! SQLite ledger (being written).
