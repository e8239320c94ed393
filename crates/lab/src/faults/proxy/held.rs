//! Requests held back before they reach the broker: what the proxy notes about
//! each (for a Produce request, the producer id, epoch and sequence of its
//! batches) and the broker's answer when it finally comes. Pure functions,
//! tested without sockets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;
use serde::{Deserialize, Serialize};

use super::api_name;

/// Hold the next `count` requests of one api for `delay` before forwarding
/// them, as a network path that stalls one packet would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHold {
    /// The api whose requests are held, e.g. `ApiKey::Produce as i16` (0).
    pub api_key: i16,
    /// How many more requests to hold.
    pub count: u32,
    /// How long each is held.
    pub delay: Duration,
}

impl RequestHold {
    /// Takes one hold if `api_key` is this one's api: how long to hold it.
    pub(super) fn take(&mut self, api_key: i16) -> Option<Duration> {
        if api_key != self.api_key || self.count == 0 {
            return None;
        }
        self.count -= 1;
        Some(self.delay)
    }
}

/// One record batch of a Produce request, as its header says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: i32,
    /// The batch belongs to a transaction (attribute bit 4).
    pub transactional: bool,
}

/// A request the proxy held back, and what the broker answered to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRequest {
    /// The api, as Kafka spells it (`"Produce"`).
    pub api: String,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Milliseconds since the Unix epoch: when the request reached the proxy,
    /// when the proxy forwarded it, when the broker's answer came back.
    pub held_at_ms: u64,
    pub forwarded_at_ms: Option<u64>,
    pub answered_at_ms: Option<u64>,
    /// A Produce request: its batches.
    pub batches: Vec<BatchHeader>,
    /// A Produce answer: the error code of each partition (0: appended).
    pub error_codes: Vec<i16>,
    /// The broker's error messages, where it gave one.
    pub error_messages: Vec<String>,
    /// The client had closed its connection before the answer came: nobody
    /// heard it but the proxy.
    pub client_gone: bool,
}

/// Now, in milliseconds since the Unix epoch (the clock the lab's reports
/// share with [`HeldRequest`]).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HeldRequest {
    /// The note about a request held as it arrives; `body` is the request
    /// after its header. Undecodable batches are left out, never an error:
    /// the request is forwarded as it came.
    pub(super) fn arrived(
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        body: &[u8],
    ) -> HeldRequest {
        let batches = if api_key == ApiKey::Produce as i16 {
            produce_batches(body, api_version)
        } else {
            Vec::new()
        };
        HeldRequest {
            api: api_name(api_key),
            api_version,
            correlation_id,
            held_at_ms: now_ms(),
            batches,
            ..HeldRequest::default()
        }
    }

    /// Notes the broker's answer (`payload`: the response frame without its
    /// length prefix).
    pub(super) fn answered(&mut self, payload: &[u8], client_gone: bool) {
        self.answered_at_ms = Some(now_ms());
        self.client_gone = client_gone;
        if self.api == "Produce" {
            let (codes, messages) = produce_errors(payload, self.api_version);
            self.error_codes = codes;
            self.error_messages = messages;
        }
    }
}

/// The batch headers of a Produce request body (after its header).
pub fn produce_batches(body: &[u8], version: i16) -> Vec<BatchHeader> {
    let mut rest = body;
    let Ok(request) = ProduceRequest::decode(&mut rest, version) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for topic in &request.topic_data {
        for p in &topic.partition_data {
            let Some(records) = &p.records else { continue };
            out.extend(batch_header(p.index, records));
        }
    }
    out
}

/// The header of the first record batch in `records` (format v2).
fn batch_header(partition: i32, records: &[u8]) -> Option<BatchHeader> {
    let at = |range: std::ops::Range<usize>| records.get(range);
    let i16_at = |o: usize| at(o..o + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let i32_at =
        |o: usize| at(o..o + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let i64_at = |o: usize| {
        at(o..o + 8).map(|b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if *records.get(16)? != 2 {
        return None; // not the v2 batch format
    }
    Some(BatchHeader {
        partition,
        producer_id: i64_at(43)?,
        producer_epoch: i16_at(51)?,
        base_sequence: i32_at(53)?,
        records: i32_at(57)?,
        transactional: i16_at(21)? & 0x10 != 0,
    })
}

/// The error code (and message, if any) of each partition in a Produce
/// response; nothing if it cannot be decoded.
pub fn produce_errors(payload: &[u8], version: i16) -> (Vec<i16>, Vec<String>) {
    let mut body = payload;
    let header_version = ApiKey::Produce.response_header_version(version);
    if ResponseHeader::decode(&mut body, header_version).is_err() {
        return (Vec::new(), Vec::new());
    }
    let Ok(response) = ProduceResponse::decode(&mut body, version) else {
        return (Vec::new(), Vec::new());
    };
    let mut codes = Vec::new();
    let mut messages = Vec::new();
    for topic in &response.responses {
        for p in &topic.partition_responses {
            codes.push(p.error_code);
            if let Some(m) = &p.error_message {
                messages.push(m.to_string());
            }
        }
    }
    (codes, messages)
}

/// Kafka's name for a protocol error code (`INVALID_TXN_STATE` for 48), as
/// its `Errors` enum spells it; the number if the lab does not know it.
pub fn error_name(code: i16) -> String {
    let name = match code {
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        22 => "ILLEGAL_GENERATION",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46 => "DUPLICATE_SEQUENCE_NUMBER",
        47 => "INVALID_PRODUCER_EPOCH",
        48 => "INVALID_TXN_STATE",
        49 => "INVALID_PRODUCER_ID_MAPPING",
        59 => "UNKNOWN_PRODUCER_ID",
        82 => "FENCED_INSTANCE_ID",
        90 => "PRODUCER_FENCED",
        110 => "FENCED_MEMBER_EPOCH",
        120 => "TRANSACTION_ABORTABLE",
        _ => return code.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A record batch header (format v2) and nothing after it.
    fn batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.push(2); // magic
        b.extend([0u8; 4]); // crc
        b.extend(0x10i16.to_be_bytes()); // attributes: transactional
        b.extend([0u8; 4 + 8 + 8]); // last offset delta, timestamps
        b.extend(pid.to_be_bytes());
        b.extend(epoch.to_be_bytes());
        b.extend(seq.to_be_bytes());
        b.extend(n.to_be_bytes());
        b
    }

    /// A Produce v3 body (not flexible) with one partition of `records`.
    fn produce_v3(partition: i32, records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((-1i16).to_be_bytes()); // no transactional id
        b.extend((-1i16).to_be_bytes()); // acks
        b.extend(1000i32.to_be_bytes()); // timeout
        b.extend(1i32.to_be_bytes()); // one topic
        b.extend(1i16.to_be_bytes());
        b.push(b't');
        b.extend(1i32.to_be_bytes()); // one partition
        b.extend(partition.to_be_bytes());
        b.extend((records.len() as i32).to_be_bytes());
        b.extend(records);
        b
    }

    #[test]
    fn a_produce_requests_batches_show_producer_epoch_and_sequence() {
        let body = produce_v3(2, &batch(4001, 3, 17, 5));
        let batches = produce_batches(&body, 3);
        assert_eq!(
            batches,
            [BatchHeader {
                partition: 2,
                producer_id: 4001,
                producer_epoch: 3,
                base_sequence: 17,
                records: 5,
                transactional: true,
            }]
        );
        assert!(produce_batches(&body[..body.len() / 2], 3).is_empty());
        assert_eq!(batch_header(0, &[0; 20]), None, "magic 0 is not v2");
    }

    #[test]
    fn a_produce_responses_error_codes_are_read_per_partition() {
        let failed = PartitionProduceResponse::default()
            .with_index(0)
            .with_error_code(48)
            .with_error_message(Some(StrBytes::from_static_str("not in txn")));
        let ok = PartitionProduceResponse::default().with_index(1);
        let topic =
            TopicProduceResponse::default().with_partition_responses(vec![failed, ok]);
        let response = ProduceResponse::default().with_responses(vec![topic]);
        let mut payload = 7i32.to_be_bytes().to_vec();
        // Produce v9 responses have the flexible header: an empty tag buffer.
        payload.push(0);
        response.encode(&mut payload, 9).unwrap();
        let (codes, messages) = produce_errors(&payload, 9);
        assert_eq!(codes, [48, 0]);
        assert_eq!(messages, ["not in txn"]);
        assert_eq!(produce_errors(&payload[..3], 9), (vec![], vec![]));
        assert_eq!(error_name(48), "INVALID_TXN_STATE");
        assert_eq!(error_name(-5), "-5");
    }

    #[test]
    fn a_hold_counts_down_for_its_api_only() {
        let d = Duration::from_millis(5);
        let mut h = RequestHold {
            api_key: 0,
            count: 1,
            delay: d,
        };
        assert_eq!(h.take(26), None);
        assert_eq!(h.take(0), Some(d));
        assert_eq!(h.take(0), None);
    }
}
