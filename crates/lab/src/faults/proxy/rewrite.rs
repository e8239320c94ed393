//! Broker addresses in responses: rewritten so that clients only ever talk to
//! the proxy.

use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::bounds::{skim, Schema, DESCRIBE_CLUSTER, FIND_COORDINATOR, METADATA};
use super::frames::FrameError;

/// The apis whose responses name brokers, with their names (for errors) and
/// layouts (for the bounds check); `None` for any other api.
fn broker_naming(api_key: i16) -> Option<(ApiKey, &'static str, &'static Schema)> {
    match ApiKey::try_from(api_key) {
        Ok(api @ ApiKey::Metadata) => Some((api, "Metadata", &METADATA)),
        Ok(api @ ApiKey::FindCoordinator) => {
            Some((api, "FindCoordinator", &FIND_COORDINATOR))
        }
        Ok(api @ ApiKey::DescribeCluster) => {
            Some((api, "DescribeCluster", &DESCRIBE_CLUSTER))
        }
        _ => None,
    }
}

/// Whether responses to `api_key` name brokers, so the proxy must rewrite them.
pub fn names_brokers(api_key: i16) -> bool {
    broker_naming(api_key).is_some()
}

/// Where the proxy sends clients for broker `(host, port)`: its own
/// `(host, port)` for that broker, or why there is none.
pub type Router<'a> =
    dyn FnMut(&str, i32) -> std::result::Result<(String, i32), String> + 'a;

/// Rewrites the broker addresses in a response (`payload`: the frame without
/// its length prefix, response header included) to those `route` gives for
/// each `(host, port)` (an `Err` from `route` becomes [`FrameError::Route`]). `Ok(None)`: forward the frame unchanged (another api,
/// or nothing to rewrite). Entries without a broker (node id < 0, empty host,
/// port out of range: a coordinator that is not available) are left alone.
pub fn rewrite_response(
    api_key: i16,
    api_version: i16,
    payload: &[u8],
    route: &mut Router<'_>,
) -> std::result::Result<Option<Vec<u8>>, FrameError> {
    let Some((api, name, schema)) = broker_naming(api_key) else {
        return Ok(None);
    };
    let bad = |detail: String| FrameError::BadBody {
        api: name,
        version: api_version,
        detail,
    };
    schema.check_version(api_version).map_err(bad)?;
    let mut body = payload;
    ResponseHeader::decode(&mut body, api.response_header_version(api_version))
        .map_err(|e| bad(format!("header: {e}")))?;
    let header = &payload[..payload.len() - body.len()];
    // kafka-protocol reserves an array's claimed length before reading it:
    // a corrupt count would abort the process, so check every count first.
    skim(schema, body, api_version).map_err(bad)?;

    let mut out = header.to_vec();
    let mut remapper = Remapper {
        route,
        changed: false,
    };
    let recode_as = match api {
        ApiKey::Metadata => recode::<MetadataResponse>,
        ApiKey::FindCoordinator => recode::<FindCoordinatorResponse>,
        _ => recode::<DescribeClusterResponse>,
    };
    recode_as(body, api_version, &mut out, &bad, &mut remapper)?;
    Ok(if remapper.changed { Some(out) } else { None })
}

/// Decodes an `M` from `body`, points its brokers where `remapper` says, and
/// appends it re-encoded to `out`. Bytes left over after the message are
/// refused, and before an encoding failure, in the words `bad` gives.
fn recode<M: NamesBrokers>(
    mut body: &[u8],
    version: i16,
    out: &mut Vec<u8>,
    bad: &dyn Fn(String) -> FrameError,
    remapper: &mut Remapper<'_, '_>,
) -> std::result::Result<(), FrameError> {
    let mut m = M::decode(&mut body, version).map_err(|e| bad(e.to_string()))?;
    m.remap_brokers(version, remapper)?;
    let encoded = m.encode(out, version);
    if !body.is_empty() {
        return Err(bad(format!(
            "{} bytes left over after the message",
            body.len()
        )));
    }
    encoded.map_err(|e| bad(format!("re-encoding: {e}")))
}

/// Points broker entries where a [`Router`] says, and notes whether any moved.
struct Remapper<'r, 'a> {
    route: &'r mut Router<'a>,
    changed: bool,
}

impl Remapper<'_, '_> {
    /// One broker entry. Entries without a broker are left alone.
    fn remap(
        &mut self,
        host: &mut StrBytes,
        port: &mut i32,
        node: i32,
    ) -> std::result::Result<(), FrameError> {
        if node < 0 || host.is_empty() || !(1..=65535).contains(port) {
            return Ok(());
        }
        let (new_host, new_port) =
            (self.route)(host.as_str(), *port).map_err(FrameError::Route)?;
        if host.as_str() != new_host || *port != new_port {
            *host = StrBytes::from_string(new_host);
            *port = new_port;
            self.changed = true;
        }
        Ok(())
    }
}

/// A response message whose broker entries the proxy rewrites.
trait NamesBrokers: Decodable + Encodable {
    fn remap_brokers(
        &mut self,
        version: i16,
        remapper: &mut Remapper<'_, '_>,
    ) -> std::result::Result<(), FrameError>;
}

impl NamesBrokers for MetadataResponse {
    fn remap_brokers(
        &mut self,
        _version: i16,
        remapper: &mut Remapper<'_, '_>,
    ) -> std::result::Result<(), FrameError> {
        for b in &mut self.brokers {
            remapper.remap(&mut b.host, &mut b.port, b.node_id.0)?;
        }
        Ok(())
    }
}

impl NamesBrokers for FindCoordinatorResponse {
    fn remap_brokers(
        &mut self,
        version: i16,
        remapper: &mut Remapper<'_, '_>,
    ) -> std::result::Result<(), FrameError> {
        // Up to v3 one coordinator in the top level; from v4 a batch of them.
        if version <= 3 {
            remapper.remap(&mut self.host, &mut self.port, self.node_id.0)?;
        }
        for c in &mut self.coordinators {
            remapper.remap(&mut c.host, &mut c.port, c.node_id.0)?;
        }
        Ok(())
    }
}

impl NamesBrokers for DescribeClusterResponse {
    fn remap_brokers(
        &mut self,
        _version: i16,
        remapper: &mut Remapper<'_, '_>,
    ) -> std::result::Result<(), FrameError> {
        for b in &mut self.brokers {
            remapper.remap(&mut b.host, &mut b.port, b.broker_id.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::proxy::testkit::{
        broker_strategy, decode_response, metadata, response_payload, str_bytes,
        test_route, topic_strategy,
    };
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::BrokerId;
    use proptest::prelude::*;

    /// Encodes `m` at `version` and decodes it again: the form the wire keeps.
    fn canonical(m: &MetadataResponse, version: i16) -> MetadataResponse {
        let payload = response_payload(ApiKey::Metadata, version, 1, m);
        decode_response::<MetadataResponse>(ApiKey::Metadata, version, &payload).1
    }

    proptest! {
        #[test]
        fn metadata_round_trips_with_only_broker_addresses_changed(
            version in prop::sample::select(vec![0i16, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13]),
            brokers in proptest::collection::vec(broker_strategy(), 0..6),
            topics in proptest::collection::vec(topic_strategy(), 0..4),
            correlation_id in any::<i32>(),
        ) {
            let original = canonical(&metadata(version, &brokers, &topics), version);
            let payload = response_payload(ApiKey::Metadata, version, correlation_id, &original);
            let out = rewrite_response(ApiKey::Metadata as i16, version, &payload, &mut test_route)
                .unwrap();
            let mut expected = original.clone();
            for b in &mut expected.brokers {
                let (host, port) = test_route(&b.host, b.port).unwrap();
                b.host = str_bytes(&host);
                b.port = port;
            }
            let changed = expected != original;
            prop_assert_eq!(out.is_some(), changed);
            let out = out.unwrap_or(payload.clone());
            let (corr, decoded) = decode_response::<MetadataResponse>(ApiKey::Metadata, version, &out);
            prop_assert_eq!(corr, correlation_id);
            prop_assert_eq!(&decoded, &expected);
            // The response header is passed through as it was.
            let header_len = if version >= 9 { 5 } else { 4 };
            prop_assert_eq!(&out[..header_len], &payload[..header_len]);
            // Routing to where they already are changes nothing at all.
            let mut same = |h: &str, p: i32| Ok((h.to_string(), p));
            prop_assert_eq!(
                rewrite_response(ApiKey::Metadata as i16, version, &out, &mut same).unwrap(),
                None
            );
        }

        #[test]
        fn find_coordinator_round_trips_in_the_old_and_the_batched_form(
            version in 0i16..=6,
            node in -1..50i32,
            host in "[a-z0-9.]{0,16}",
            port in -1..=65535i32,
            keys in proptest::collection::vec(("[a-z0-9-]{1,12}", 0..50i32, "[a-z0-9.]{1,16}", 1..=65535i32), 0..4),
        ) {
            let mut m = FindCoordinatorResponse::default();
            if version >= 1 {
                m.throttle_time_ms = 3;
            }
            if version <= 3 {
                m.node_id = BrokerId(node);
                m.host = str_bytes(&host);
                m.port = port;
                if version >= 1 {
                    m.error_message = Some(str_bytes("fine"));
                }
            } else {
                m.coordinators = keys.iter().map(|(key, node, host, port)| {
                    Coordinator::default()
                        .with_key(str_bytes(key))
                        .with_node_id(BrokerId(*node))
                        .with_host(str_bytes(host))
                        .with_port(*port)
                }).collect();
                // A coordinator that is not available: no broker to route to.
                m.coordinators.push(Coordinator::default()
                    .with_key(str_bytes("not-ready"))
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(15));
            }
            let payload = response_payload(ApiKey::FindCoordinator, version, 42, &m);
            let out = rewrite_response(ApiKey::FindCoordinator as i16, version, &payload, &mut test_route)
                .unwrap()
                .unwrap_or(payload.clone());
            let (corr, decoded) =
                decode_response::<FindCoordinatorResponse>(ApiKey::FindCoordinator, version, &out);
            prop_assert_eq!(corr, 42);
            let mut expected = m.clone();
            let routable = |n: i32, h: &str, p: i32| n >= 0 && !h.is_empty() && (1..=65535).contains(&p);
            if version <= 3 && routable(node, &host, port) {
                expected.host = str_bytes("127.0.0.1");
                expected.port = test_route(&host, port).unwrap().1;
            }
            for c in &mut expected.coordinators {
                if routable(c.node_id.0, &c.host, c.port) {
                    c.port = test_route(&c.host, c.port).unwrap().1;
                    c.host = str_bytes("127.0.0.1");
                }
            }
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn describe_cluster_round_trips(
            version in 0i16..=2,
            brokers in proptest::collection::vec(broker_strategy(), 0..5),
        ) {
            let mut m = DescribeClusterResponse::default();
            m.cluster_id = str_bytes("cluster-xyz");
            m.controller_id = BrokerId(2);
            if version >= 1 {
                m.endpoint_type = 1;
            }
            m.brokers = brokers.iter().map(|(node, host, port, rack)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(*node))
                    .with_host(str_bytes(host))
                    .with_port(*port)
                    .with_rack(rack.as_deref().map(str_bytes))
                    .with_is_fenced(version >= 2 && *node % 2 == 1)
            }).collect();
            let payload = response_payload(ApiKey::DescribeCluster, version, 5, &m);
            let out = rewrite_response(ApiKey::DescribeCluster as i16, version, &payload, &mut test_route)
                .unwrap()
                .unwrap_or(payload.clone());
            let (_, decoded) =
                decode_response::<DescribeClusterResponse>(ApiKey::DescribeCluster, version, &out);
            let mut expected = m.clone();
            for b in &mut expected.brokers {
                b.port = test_route(&b.host, b.port).unwrap().1;
                b.host = str_bytes("127.0.0.1");
            }
            prop_assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn unsupported_versions_and_trailing_bytes_are_refused() {
        let m = metadata(12, &[(1, "a".into(), 1, None)], &[]);
        let mut payload = response_payload(ApiKey::Metadata, 12, 1, &m);
        assert!(rewrite_response(3, 14, &payload, &mut test_route).is_err());
        assert!(rewrite_response(3, -1, &payload, &mut test_route).is_err());
        payload.push(0);
        assert!(rewrite_response(3, 12, &payload, &mut test_route).is_err());
        // Other apis are not this function's business.
        assert_eq!(rewrite_response(0, 9, &payload, &mut test_route), Ok(None));
        assert_eq!(rewrite_response(18, 3, &payload, &mut test_route), Ok(None));
    }

    #[test]
    fn a_routing_failure_is_reported_as_such() {
        let m = metadata(12, &[(1, "a".into(), 1, None)], &[]);
        let payload = response_payload(ApiKey::Metadata, 12, 1, &m);
        let mut fail = |_: &str, _: i32| Err("no port".to_string());
        assert_eq!(
            rewrite_response(3, 12, &payload, &mut fail),
            Err(FrameError::Route("no port".into()))
        );
    }
}
