//! Local sink (being written).
