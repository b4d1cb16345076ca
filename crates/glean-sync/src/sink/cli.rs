//! CLI sink (being written).
