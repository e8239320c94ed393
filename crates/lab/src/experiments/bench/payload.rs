//! The record values the benchmark sends: the lab's JSON
//! [`Payload`](crate::record::Payload) from a template, the stamp the
//! end-to-end reader reads back, and what encoding a value costs.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A record value in the lab's [`Payload`](crate::record::Payload) JSON format,
/// built once: `fill` writes the id and time stamp into fixed-width fields
/// (right-aligned, padded with spaces, which JSON allows before a number), so
/// a record costs two small integer formats and no allocation.
pub struct PayloadTemplate {
    bytes: Vec<u8>,
    id_at: usize,
    sent_at: usize,
}

const FIELD: usize = 20; // digits of u64::MAX

impl PayloadTemplate {
    /// A value of `size` bytes, or of the bare document (70 bytes) if larger.
    pub fn new(size: usize) -> PayloadTemplate {
        let head = format!(
            "{{\"id\":{:>FIELD$},\"sent_at_us\":{:>FIELD$},\"pad\":\"",
            0, 0
        );
        let tail = "\"}";
        let pad = size.saturating_sub(head.len() + tail.len());
        let mut bytes = head.into_bytes();
        bytes.resize(bytes.len() + pad, b'x');
        bytes.extend_from_slice(tail.as_bytes());
        let id_at = "{\"id\":".len();
        let sent_at = id_at + FIELD + ",\"sent_at_us\":".len();
        PayloadTemplate {
            bytes,
            id_at,
            sent_at,
        }
    }

    /// The value for record `id`, sent at `sent_at_us`.
    pub fn fill(&mut self, id: u64, sent_at_us: u64) -> &[u8] {
        put_number(&mut self.bytes[self.id_at..self.id_at + FIELD], id);
        put_number(
            &mut self.bytes[self.sent_at..self.sent_at + FIELD],
            sent_at_us,
        );
        &self.bytes
    }
}

/// Writes `value` right-aligned into `field`, spaces before it.
fn put_number(field: &mut [u8], mut value: u64) {
    let mut i = field.len();
    loop {
        i -= 1;
        field[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    field[..i].fill(b' ');
}

/// The id and send time in a record value.
pub(super) fn parse_stamp(value: &[u8]) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct Stamp {
        id: u64,
        sent_at_us: u64,
    }
    let stamp: Stamp = serde_json::from_slice(value).ok()?;
    Some((stamp.id, stamp.sent_at_us))
}

/// Now, in microseconds since the Unix epoch: the clock of `sent_at_us`.
pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What encoding a record value costs, per record, on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncodingCost {
    pub record_bytes: usize,
    /// `record::value`: serde_json twice (to size the padding) and a fresh buffer.
    pub json_ns_per_record: f64,
    /// The benchmark's template: the id and time stamp written in place.
    pub template_ns_per_record: f64,
}

/// Times `record::value` and the template on this machine.
pub(super) fn measure_encoding(record_bytes: usize) -> EncodingCost {
    const N: u64 = 20_000;
    let started = Instant::now();
    for id in 0..N {
        std::hint::black_box(crate::record::value(
            std::hint::black_box(id),
            record_bytes,
        ));
    }
    let json = started.elapsed();
    let mut template = PayloadTemplate::new(record_bytes);
    let started = Instant::now();
    for id in 0..N {
        std::hint::black_box(template.fill(std::hint::black_box(id), now_us()));
    }
    let filled = started.elapsed();
    EncodingCost {
        record_bytes,
        json_ns_per_record: json.as_nanos() as f64 / N as f64,
        template_ns_per_record: filled.as_nanos() as f64 / N as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Payload;

    #[test]
    fn the_template_is_a_lab_payload_of_the_requested_size() {
        let mut t = PayloadTemplate::new(1024);
        for (id, at) in [
            (0, 0),
            (7, 1_790_000_000_123_456),
            (u64::MAX, u64::MAX),
            (42, 5),
        ] {
            let value = t.fill(id, at).to_vec();
            assert_eq!(value.len(), 1024);
            let p: Payload = serde_json::from_slice(&value).unwrap();
            assert_eq!((p.id, p.sent_at_us), (id, at));
            assert_eq!(parse_stamp(&value), Some((id, at)));
        }
        // The same size as the lab's own encoder gives.
        assert_eq!(crate::record::value(3, 1024).len(), 1024);
        // Smaller than the bare document: the bare document.
        let mut small = PayloadTemplate::new(10);
        let value = small.fill(1, 2).to_vec();
        assert_eq!(value.len(), 70);
        assert!(serde_json::from_slice::<Payload>(&value).is_ok());
    }

    #[test]
    fn the_reader_reads_the_lab_encoder_too() {
        let value = crate::record::value(99, 300);
        let (id, at) = parse_stamp(&value).unwrap();
        assert_eq!(id, 99);
        assert!(at > 0);
        assert_eq!(parse_stamp(b"not json"), None);
    }

    #[test]
    fn numbers_are_written_right_aligned() {
        let mut field = [b'?'; 5];
        put_number(&mut field, 42);
        assert_eq!(&field, b"   42");
        put_number(&mut field, 0);
        assert_eq!(&field, b"    0");
        put_number(&mut field, 99999);
        assert_eq!(&field, b"99999");
    }
}
