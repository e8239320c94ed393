//! Helpers shared by the proxy's unit tests: messages encoded with
//! kafka-protocol, a Metadata response with every field set, and a stand-in
//! broker speaking raw frames.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use super::{decode_request_header, encode_frame, FrameReader, RequestInfo};
use crate::support::lock;

/// A whole request frame, encoded with kafka-protocol.
pub(super) fn request_frame<M: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("proxy-test"));
    let mut payload = Vec::new();
    header
        .encode(&mut payload, api.request_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    encode_frame(&payload)
}

/// A response payload (header + body), encoded with kafka-protocol.
pub(super) fn response_payload<M: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Vec<u8> {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let mut payload = Vec::new();
    header
        .encode(&mut payload, api.response_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    payload
}

pub(super) fn decode_response<M: Decodable>(
    api: ApiKey,
    version: i16,
    payload: &[u8],
) -> (i32, M) {
    let mut rest = payload;
    let header =
        ResponseHeader::decode(&mut rest, api.response_header_version(version))
            .unwrap();
    let body = M::decode(&mut rest, version).unwrap();
    assert!(rest.is_empty(), "{} bytes left over", rest.len());
    (header.correlation_id, body)
}

/// The test's stand-in for the proxy's listeners: a fixed new address per broker.
pub(super) fn test_route(
    host: &str,
    port: i32,
) -> std::result::Result<(String, i32), String> {
    let _ = host;
    Ok(("127.0.0.1".to_string(), 20000 + port % 10000))
}

pub(super) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A broker: node id, host, port, rack.
pub(super) type BrokerSpec = (i32, String, i32, Option<String>);

/// A topic: name, then (partition, leader, replicas) per partition.
pub(super) type TopicSpec = (String, Vec<(i32, i32, Vec<i32>)>);

/// A Metadata response with every field its version has set to something.
pub(super) fn metadata(
    version: i16,
    brokers: &[BrokerSpec],
    topics: &[TopicSpec],
) -> MetadataResponse {
    let mut m = MetadataResponse::default();
    if version >= 3 {
        m.throttle_time_ms = 17;
    }
    m.brokers = brokers
        .iter()
        .map(|(node, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(*node))
                .with_host(str_bytes(host))
                .with_port(*port)
                .with_rack(if version >= 1 {
                    rack.as_deref().map(str_bytes)
                } else {
                    None
                })
        })
        .collect();
    if version >= 2 {
        m.cluster_id = Some(str_bytes("cluster-xyz"));
    }
    if version >= 1 {
        m.controller_id = BrokerId(1);
    }
    m.topics = topics.iter().map(|t| metadata_topic(version, t)).collect();
    if (8..=10).contains(&version) {
        m.cluster_authorized_operations = 0x00f0;
    }
    if version >= 9 {
        m.unknown_tagged_fields
            .insert(99, str_bytes("kept").into_bytes());
    }
    m
}

/// One topic of [`metadata`], every field its version has set.
fn metadata_topic(
    version: i16,
    (name, partitions): &TopicSpec,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(str_bytes(name)));
    if version >= 1 {
        t.is_internal = name.starts_with('_');
    }
    if version >= 8 {
        t.topic_authorized_operations = 0x0ff8;
    }
    t.partitions = partitions
        .iter()
        .map(|(index, leader, replicas)| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = *index;
            p.leader_id = BrokerId(*leader);
            if version >= 7 {
                p.leader_epoch = 3;
            }
            p.replica_nodes = replicas.iter().map(|&r| BrokerId(r)).collect();
            p.isr_nodes = replicas.iter().take(1).map(|&r| BrokerId(r)).collect();
            if version >= 5 {
                p.offline_replicas =
                    replicas.iter().skip(2).map(|&r| BrokerId(r)).collect();
            }
            p
        })
        .collect();
    t
}

pub(super) fn broker_strategy() -> impl Strategy<Value = BrokerSpec> {
    (
        0..1000i32,
        "[a-z0-9.-]{1,24}",
        1..=65535i32,
        proptest::option::of("[a-z0-9-]{1,8}"),
    )
}

pub(super) fn topic_strategy() -> impl Strategy<Value = TopicSpec> {
    (
        "[a-z_][a-z0-9._-]{0,20}",
        proptest::collection::vec(
            (0..64i32, -1..5i32, proptest::collection::vec(0..5i32, 0..4)),
            0..4,
        ),
    )
}

/// A stand-in broker speaking raw frames: it answers every request for
/// which `answer` gives a payload, and remembers every request header.
pub(super) struct FakeBroker {
    pub(super) addr: SocketAddr,
    seen: Arc<Mutex<Vec<RequestInfo>>>,
}

pub(super) type Answer = dyn Fn(&RequestInfo) -> Option<Vec<u8>> + Send + Sync;

impl FakeBroker {
    pub(super) fn start(answer: Arc<Answer>) -> FakeBroker {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let answer = answer.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut frames = FrameReader::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        frames.extend(&chunk[..n]);
                        while let Ok(Some(raw)) = frames.next_frame() {
                            let Ok(info) = decode_request_header(&raw[4..]) else {
                                return;
                            };
                            lock(&log).push(info);
                            if let Some(payload) = answer(&info) {
                                if stream.write_all(&encode_frame(&payload)).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeBroker { addr, seen }
    }

    /// Answers everything with the correlation id and `ok`, except
    /// Produce requests with acks=0 (it cannot tell; the test says so
    /// by correlation id < 0).
    pub(super) fn simple() -> FakeBroker {
        FakeBroker::start(Arc::new(|info: &RequestInfo| {
            if info.correlation_id < 0 {
                return None;
            }
            let mut p = info.correlation_id.to_be_bytes().to_vec();
            p.extend_from_slice(b"ok");
            Some(p)
        }))
    }

    pub(super) fn requests(&self) -> Vec<RequestInfo> {
        lock(&self.seen).clone()
    }
}
