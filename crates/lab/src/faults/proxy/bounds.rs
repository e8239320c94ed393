//! A bounds check of the three responses the proxy decodes. kafka-protocol's
//! decoder calls `Vec::with_capacity(count)` with the count the bytes claim: a
//! garbage count of two billion brokers is an allocation of hundreds of GB and
//! an abort, which no `catch_unwind` can stop. So the proxy first walks the
//! message with the same layout and refuses any count larger than the bytes
//! left. The round-trip tests keep this layout in step with kafka-protocol's.

use kafka_protocol::messages::{
    DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
};
use kafka_protocol::protocol::Message;

#[derive(Clone, Copy)]
enum Ty {
    I8,
    I16,
    I32,
    Bool,
    Uuid,
    /// A (nullable) string: i16 length, or compact (varint length + 1).
    Str,
    /// An array of int32 (broker ids).
    I32s,
    Structs(&'static [Field]),
}

/// A field, present in versions `from..=to`.
#[derive(Clone, Copy)]
struct Field(Ty, i16, i16);

const ANY: i16 = i16::MAX;

pub(super) struct Schema {
    fields: &'static [Field],
    /// The first flexible version (compact strings and arrays, tagged fields).
    flexible_from: i16,
    /// The versions kafka-protocol 0.18 can decode.
    versions: (i16, i16),
}

impl Schema {
    /// Refuses a version kafka-protocol cannot decode.
    pub(super) fn check_version(&self, version: i16) -> Result<(), String> {
        let (min, max) = self.versions;
        if version < min || version > max {
            return Err(format!(
                "version not supported by kafka-protocol 0.18 ({min}..={max})"
            ));
        }
        Ok(())
    }
}

static METADATA_BROKER: [Field; 4] = [
    Field(Ty::I32, 0, ANY), // node_id
    Field(Ty::Str, 0, ANY), // host
    Field(Ty::I32, 0, ANY), // port
    Field(Ty::Str, 1, ANY), // rack
];
static METADATA_PARTITION: [Field; 7] = [
    Field(Ty::I16, 0, ANY),  // error_code
    Field(Ty::I32, 0, ANY),  // partition_index
    Field(Ty::I32, 0, ANY),  // leader_id
    Field(Ty::I32, 7, ANY),  // leader_epoch
    Field(Ty::I32s, 0, ANY), // replica_nodes
    Field(Ty::I32s, 0, ANY), // isr_nodes
    Field(Ty::I32s, 5, ANY), // offline_replicas
];
static METADATA_TOPIC: [Field; 6] = [
    Field(Ty::I16, 0, ANY),                          // error_code
    Field(Ty::Str, 0, ANY),                          // name
    Field(Ty::Uuid, 10, ANY),                        // topic_id
    Field(Ty::Bool, 1, ANY),                         // is_internal
    Field(Ty::Structs(&METADATA_PARTITION), 0, ANY), // partitions
    Field(Ty::I32, 8, ANY),                          // topic_authorized_operations
];
static METADATA_FIELDS: [Field; 7] = [
    Field(Ty::I32, 3, ANY),                       // throttle_time_ms
    Field(Ty::Structs(&METADATA_BROKER), 0, ANY), // brokers
    Field(Ty::Str, 2, ANY),                       // cluster_id
    Field(Ty::I32, 1, ANY),                       // controller_id
    Field(Ty::Structs(&METADATA_TOPIC), 0, ANY),  // topics
    Field(Ty::I32, 8, 10),                        // cluster_authorized_operations
    Field(Ty::I16, 13, ANY),                      // error_code
];
pub(super) static METADATA: Schema = Schema {
    fields: &METADATA_FIELDS,
    flexible_from: 9,
    versions: (
        MetadataResponse::VERSIONS.min,
        MetadataResponse::VERSIONS.max,
    ),
};

static COORDINATOR: [Field; 6] = [
    Field(Ty::Str, 4, ANY), // key
    Field(Ty::I32, 4, ANY), // node_id
    Field(Ty::Str, 4, ANY), // host
    Field(Ty::I32, 4, ANY), // port
    Field(Ty::I16, 4, ANY), // error_code
    Field(Ty::Str, 4, ANY), // error_message
];
static FIND_COORDINATOR_FIELDS: [Field; 7] = [
    Field(Ty::I32, 1, ANY),                   // throttle_time_ms
    Field(Ty::I16, 0, 3),                     // error_code
    Field(Ty::Str, 1, 3),                     // error_message
    Field(Ty::I32, 0, 3),                     // node_id
    Field(Ty::Str, 0, 3),                     // host
    Field(Ty::I32, 0, 3),                     // port
    Field(Ty::Structs(&COORDINATOR), 4, ANY), // coordinators
];
pub(super) static FIND_COORDINATOR: Schema = Schema {
    fields: &FIND_COORDINATOR_FIELDS,
    flexible_from: 3,
    versions: (
        FindCoordinatorResponse::VERSIONS.min,
        FindCoordinatorResponse::VERSIONS.max,
    ),
};

static DESCRIBE_CLUSTER_BROKER: [Field; 5] = [
    Field(Ty::I32, 0, ANY),  // broker_id
    Field(Ty::Str, 0, ANY),  // host
    Field(Ty::I32, 0, ANY),  // port
    Field(Ty::Str, 0, ANY),  // rack
    Field(Ty::Bool, 2, ANY), // is_fenced
];
static DESCRIBE_CLUSTER_FIELDS: [Field; 8] = [
    Field(Ty::I32, 0, ANY), // throttle_time_ms
    Field(Ty::I16, 0, ANY), // error_code
    Field(Ty::Str, 0, ANY), // error_message
    Field(Ty::I8, 1, ANY),  // endpoint_type
    Field(Ty::Str, 0, ANY), // cluster_id
    Field(Ty::I32, 0, ANY), // controller_id
    Field(Ty::Structs(&DESCRIBE_CLUSTER_BROKER), 0, ANY), // brokers
    Field(Ty::I32, 0, ANY), // cluster_authorized_operations
];
pub(super) static DESCRIBE_CLUSTER: Schema = Schema {
    fields: &DESCRIBE_CLUSTER_FIELDS,
    flexible_from: 0,
    versions: (
        DescribeClusterResponse::VERSIONS.min,
        DescribeClusterResponse::VERSIONS.max,
    ),
};

/// Checks that `body` is a well-formed message of `schema` at `version`, with
/// every length within the bytes that follow it and nothing left over.
pub(super) fn skim(
    schema: &Schema,
    body: &[u8],
    version: i16,
) -> std::result::Result<(), String> {
    let mut r = Reader::new(body);
    skim_struct(
        &mut r,
        schema.fields,
        version,
        version >= schema.flexible_from,
    )?;
    if !r.buf.is_empty() {
        return Err(format!("{} bytes left over after the message", r.buf.len()));
    }
    Ok(())
}

fn skim_struct(
    r: &mut Reader<'_>,
    fields: &[Field],
    version: i16,
    flexible: bool,
) -> std::result::Result<(), String> {
    for &Field(ty, from, to) in fields {
        if version < from || version > to {
            continue;
        }
        match ty {
            Ty::I8 | Ty::Bool => r.take(1).map(drop)?,
            Ty::I16 => r.take(2).map(drop)?,
            Ty::I32 => r.take(4).map(drop)?,
            Ty::Uuid => r.take(16).map(drop)?,
            Ty::Str => r.string(flexible)?,
            Ty::I32s => {
                let n = r.array_len(flexible)?;
                let bytes = n.checked_mul(4).ok_or("array too long")?;
                r.take(bytes).map(drop)?;
            }
            Ty::Structs(inner) => {
                let n = r.array_len(flexible)?;
                for _ in 0..n {
                    skim_struct(r, inner, version, flexible)?;
                }
            }
        }
    }
    if flexible {
        let n = r.uvarint()? as usize;
        if n > r.buf.len() {
            return Err(format!(
                "{n} tagged fields claimed, {} bytes left",
                r.buf.len()
            ));
        }
        for _ in 0..n {
            r.uvarint()?;
            let size = r.uvarint()? as usize;
            r.take(size)?;
        }
    }
    Ok(())
}

/// A cursor over bytes that never reads past the end.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("needs {n} bytes, {} left", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(super) fn i16(&mut self) -> std::result::Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint exactly as kafka-protocol reads one (at most 5 bytes).
    fn uvarint(&mut self) -> std::result::Result<u32, String> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0] as u32;
            value |= (b & 0x7F) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Skips a (nullable) string: i16 length, or compact (varint length + 1).
    pub(super) fn string(&mut self, compact: bool) -> std::result::Result<(), String> {
        if compact {
            let n = self.uvarint()? as usize;
            if n > 0 {
                self.take(n - 1)?;
            }
        } else {
            let n = self.i16()?;
            if n < -1 {
                return Err(format!("string length {n}"));
            }
            if n > 0 {
                self.take(n as usize)?;
            }
        }
        Ok(())
    }

    /// An array's element count, refused if more elements than bytes remain.
    fn array_len(&mut self, compact: bool) -> std::result::Result<usize, String> {
        let n = if compact {
            (self.uvarint()? as usize).saturating_sub(1)
        } else {
            let n = self.i32()?;
            if n < -1 {
                return Err(format!("array length {n}"));
            }
            n.max(0) as usize
        };
        if n > self.buf.len() {
            return Err(format!(
                "an array of {n} claimed, {} bytes left",
                self.buf.len()
            ));
        }
        Ok(n)
    }
}

// The checks are driven through `rewrite_response`, their one caller, so that
// they are tested as the proxy uses them.
#[cfg(test)]
mod tests {
    use crate::faults::proxy::testkit::{
        broker_strategy, metadata, response_payload, test_route, topic_strategy,
    };
    use crate::faults::proxy::{
        decode_request_header, produce_acks, response_correlation_id, rewrite_response,
    };
    use kafka_protocol::messages::{
        ApiKey, DescribeClusterResponse, FindCoordinatorResponse,
    };
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_header_and_response_decoders(
            api_key in prop::sample::select(vec![0i16, 3, 10, 18, 60, -1, 77, i16::MAX]),
            version in -2i16..16,
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = decode_request_header(&bytes);
            let _ = produce_acks(&bytes, version);
            let _ = response_correlation_id(&bytes);
            let _ = rewrite_response(api_key, version, &bytes, &mut test_route);
            // The same bytes behind a well-formed response header get further in.
            let mut framed = vec![0, 0, 0, 9];
            if version >= 9 || api_key == 60 {
                framed.push(0);
            }
            framed.extend_from_slice(&bytes);
            let _ = rewrite_response(api_key, version, &framed, &mut test_route);
        }

        #[test]
        fn corrupted_metadata_responses_are_refused_not_fatal(
            version in prop::sample::select(vec![0i16, 1, 4, 7, 9, 12, 13]),
            brokers in proptest::collection::vec(broker_strategy(), 1..4),
            topics in proptest::collection::vec(topic_strategy(), 0..3),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let m = metadata(version, &brokers, &topics);
            let payload = response_payload(ApiKey::Metadata, version, 1, &m);
            let mut damaged = payload.clone();
            for (at, byte) in &edits {
                let i = at.index(damaged.len());
                damaged[i] = *byte;
            }
            // Overwritten bytes: Ok or Err, never a panic or an abort.
            let _ = rewrite_response(ApiKey::Metadata as i16, version, &damaged, &mut test_route);
            // Truncated: always refused.
            let short = &payload[..cut.index(payload.len())];
            prop_assert!(rewrite_response(ApiKey::Metadata as i16, version, short, &mut test_route).is_err());
        }
    }

    #[test]
    fn an_absurd_array_count_is_refused_before_kafka_protocol_allocates_it() {
        // Two brokers, then claim 2^31 - 1 of them. kafka-protocol would call
        // Vec::with_capacity(2147483647) on this (about 200 GB) and abort.
        for version in [0i16, 4, 9, 13] {
            let m = metadata(
                version,
                &[(1, "a".into(), 1, None), (2, "b".into(), 2, None)],
                &[],
            );
            let mut payload = response_payload(ApiKey::Metadata, version, 1, &m);
            let at =
                if version >= 9 { 5 } else { 4 } + if version >= 3 { 4 } else { 0 };
            if version >= 9 {
                // compact array: varint of count + 1
                payload.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0x07]);
            } else {
                payload[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
            }
            let err = rewrite_response(
                ApiKey::Metadata as i16,
                version,
                &payload,
                &mut test_route,
            )
            .unwrap_err();
            assert!(err.to_string().contains("claimed"), "v{version}: {err}");
        }
        // A describe-cluster broker list and a batched coordinator list likewise.
        let mut payload = response_payload(
            ApiKey::DescribeCluster,
            0,
            1,
            &DescribeClusterResponse::default(),
        );
        let brokers_at = payload.len() - 6; // brokers, authorized ops (4), tagged fields (1)
        payload.splice(brokers_at..brokers_at + 1, [0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(rewrite_response(
            ApiKey::DescribeCluster as i16,
            0,
            &payload,
            &mut test_route
        )
        .is_err());
        let mut payload = response_payload(
            ApiKey::FindCoordinator,
            4,
            1,
            &FindCoordinatorResponse::default(),
        );
        let at = payload.len() - 2;
        payload.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(rewrite_response(
            ApiKey::FindCoordinator as i16,
            4,
            &payload,
            &mut test_route
        )
        .is_err());
    }
}
