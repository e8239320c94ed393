//! What a lab record looks like: the key is the record's unique id in decimal,
//! the value a small JSON document padded to the requested size.
//!
//! The audit counts by this id, never by offsets: transaction markers take
//! offsets too, and a duplicate has an offset of its own.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The value of a lab record.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Payload {
    pub id: u64,
    /// When the producer handed the record over, in microseconds since the epoch.
    pub sent_at_us: u64,
    /// Filler so that records have the size a workload asks for.
    pub pad: String,
}

/// The key of record `id`.
pub fn key(id: u64) -> String {
    id.to_string()
}

/// The id in a record key, if it is one of ours.
pub fn parse_key(key: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(key?).ok()?.parse().ok()
}

/// The fewest bytes a record of ours with `size`-byte values takes, key and
/// value (the record's framing comes on top): for checking a workload
/// against a bounded log.
pub fn least_bytes(size: usize) -> u64 {
    (key(0).len() + value(0, size).len()) as u64
}

/// The value of record `id`, padded to about `size` bytes.
pub fn value(id: u64, size: usize) -> Vec<u8> {
    let sent_at_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut payload = Payload {
        id,
        sent_at_us,
        pad: String::new(),
    };
    let bare = serde_json::to_vec(&payload).expect("a payload always serializes");
    payload.pad = "x".repeat(size.saturating_sub(bare.len()));
    serde_json::to_vec(&payload).expect("a payload always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_foreign_keys_are_not_ids() {
        assert_eq!(parse_key(Some(key(42).as_bytes())), Some(42));
        assert_eq!(parse_key(Some(b"hello")), None);
        assert_eq!(parse_key(None), None);
    }

    #[test]
    fn value_has_the_requested_size_and_carries_its_id() {
        let v = value(7, 200);
        assert_eq!(v.len(), 200);
        let p: Payload = serde_json::from_slice(&v).unwrap();
        assert_eq!(p.id, 7);
        // Asking for less than the bare document gives the bare document.
        assert!(value(7, 1).len() < 60);
    }
}
