//! Fault A on real Kafka, "the ack is lost after the write": a Kafka-aware
//! chaos proxy between the clients and the brokers, on loopback.
//!
//! The proxy reads the size-prefixed frames of both directions, decodes each
//! request header (api key, version, correlation id) and so knows which
//! response answers which request. It rewrites the broker addresses in
//! Metadata, FindCoordinator and DescribeCluster responses so that clients
//! only ever talk to the proxy (one local listener per broker), and forwards
//! every other frame byte for byte.
//!
//! A fault armed with [`ChaosProxy::inject`] applies to the next Produce
//! requests: each is forwarded to the broker, so its records *are* appended,
//! and then its response is dropped, delayed, or the client's connection is
//! cut. The producer cannot tell "never written" from "written, ack lost", and
//! its semantic decides what happens next: a retry that writes the batch twice
//! (at-least-once), or a retry the broker recognises by sequence number
//! (idempotence).
//!
//! [`ChaosProxy::inject_response_drop`] does the same to the next responses of
//! any other api, e.g. `EndTxn`: the transaction coordinator commits, the
//! producer never hears so, and retries the commit.
//!
//! ```no_run
//! use lab::faults::proxy::{ChaosProxy, ProduceFault};
//! let proxy = ChaosProxy::start("127.0.0.1:9092")?;
//! let cluster = lab::Cluster::connect(&proxy.bootstrap())?;
//! // ... produce a while, then:
//! proxy.inject(ProduceFault::DropResponses { count: 1 });
//! # Ok::<(), lab::Error>(())
//! ```
//!
//! Threads only, no async runtime: one accept thread per listener, two per
//! proxied connection. A malformed frame closes that connection pair only.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Kafka's api keys (`ApiKey::EndTxn`, ...): see [`ChaosProxy::inject_response_drop`].
pub use kafka_protocol::messages::ApiKey;

/// The largest frame the proxy accepts (Kafka's own default limit for a
/// request is 100 MiB of `socket.request.max.bytes`; a client never comes near).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// How long a connection whose client went away is kept open upstream, so that
/// the responses to requests already forwarded are still read (and dropped).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How long the proxy waits for a broker to accept a connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);

/// What happens to the next `count` Produce requests. Each is forwarded to the
/// broker first, so its records are appended either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ProduceFault {
    /// Forward everything.
    #[default]
    None,
    /// Swallow the response: the client never hears, the connection stays open.
    /// The client retries after its `socket.timeout.ms`.
    DropResponses { count: u32 },
    /// Hold the response back for `delay` (and everything behind it on that
    /// connection, as a slow network would).
    DelayResponses { count: u32, delay: Duration },
    /// Close the client's connection right after forwarding the request.
    CutAfterRequest { count: u32 },
}

impl ProduceFault {
    fn remaining(&self) -> u32 {
        match *self {
            ProduceFault::None => 0,
            ProduceFault::DropResponses { count }
            | ProduceFault::DelayResponses { count, .. }
            | ProduceFault::CutAfterRequest { count } => count,
        }
    }

    /// Takes one application of this fault, counting it down.
    fn take(&mut self) -> Action {
        let action = match *self {
            ProduceFault::None => return Action::Forward,
            ProduceFault::DropResponses { .. } => Action::Drop,
            ProduceFault::DelayResponses { delay, .. } => Action::Delay(delay),
            ProduceFault::CutAfterRequest { .. } => Action::Cut,
        };
        match self {
            ProduceFault::None => {}
            ProduceFault::DropResponses { count }
            | ProduceFault::DelayResponses { count, .. }
            | ProduceFault::CutAfterRequest { count } => {
                *count = count.saturating_sub(1);
            }
        }
        if self.remaining() == 0 {
            *self = ProduceFault::None;
        }
        action
    }
}

/// Swallow the responses to the next `count` requests of one api: each request
/// is forwarded and acted on by the broker, the client never hears back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseDrop {
    /// The api whose responses are dropped, e.g. `ApiKey::EndTxn as i16` (26).
    pub api_key: i16,
    /// How many more responses to drop.
    pub count: u32,
}

impl ResponseDrop {
    /// Takes one drop if `api_key` is this one's api: true if its response
    /// must be swallowed.
    fn take(&mut self, api_key: i16) -> bool {
        if api_key != self.api_key || self.count == 0 {
            return false;
        }
        self.count -= 1;
        true
    }
}

/// What the proxy has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Produce requests forwarded (acks=0 ones included).
    pub produce_requests: u64,
    /// Produce responses swallowed (by `DropResponses`, or by a
    /// [`ResponseDrop`] of Produce).
    pub responses_dropped: u64,
    /// Produce responses held back by `DelayResponses`.
    pub responses_delayed: u64,
    /// Client connections closed by `CutAfterRequest`.
    pub connections_cut: u64,
    /// Frames that could not be parsed; each closed its connection pair.
    pub malformed_frames: u64,
    /// Client connections accepted, on all listeners.
    pub connections: u64,
    /// Requests forwarded, by api name (`"EndTxn"`, ...).
    #[serde(default)]
    pub requests_by_api: BTreeMap<String, u64>,
    /// Responses swallowed, by api name (Produce ones included).
    #[serde(default)]
    pub dropped_by_api: BTreeMap<String, u64>,
}

impl ProxyStats {
    /// Requests of `api` forwarded so far.
    pub fn requests_of(&self, api: ApiKey) -> u64 {
        self.requests_by_api
            .get(&api_name(api as i16))
            .copied()
            .unwrap_or(0)
    }

    /// Responses to `api` swallowed so far.
    pub fn dropped_of(&self, api: ApiKey) -> u64 {
        self.dropped_by_api
            .get(&api_name(api as i16))
            .copied()
            .unwrap_or(0)
    }

    fn count_request(&mut self, api_key: i16) {
        *self.requests_by_api.entry(api_name(api_key)).or_insert(0) += 1;
    }

    fn count_drop(&mut self, api_key: i16) {
        if api_key == ApiKey::Produce as i16 {
            self.responses_dropped += 1;
        }
        *self.dropped_by_api.entry(api_name(api_key)).or_insert(0) += 1;
    }
}

/// An api's name as Kafka spells it (`EndTxn`), or its number if unknown.
fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(api) => format!("{api:?}"),
        Err(_) => api_key.to_string(),
    }
}

/// One listener of the proxy and the broker it leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Where clients connect: 127.0.0.1 and a port of the proxy's.
    pub local: SocketAddr,
    /// The broker behind it, `host:port` as the cluster advertises it.
    pub upstream: String,
}

/// A running chaos proxy. Dropping it (or [`ChaosProxy::stop`]) closes its
/// listeners and every connection through it.
pub struct ChaosProxy {
    shared: Arc<Shared>,
    bootstrap: SocketAddr,
}

impl ChaosProxy {
    /// Starts a proxy for the cluster at `upstream_bootstrap` (a bootstrap list;
    /// the proxy's bootstrap listener leads to its first address). Brokers the
    /// cluster names later get listeners of their own as they are learned.
    pub fn start(upstream_bootstrap: &str) -> Result<ChaosProxy> {
        let first = first_address(upstream_bootstrap)?;
        // Fail early, with the course's usual advice, if nothing is there.
        let reachable =
            first.to_socket_addrs().ok().into_iter().flatten().any(|a| {
                TcpStream::connect_timeout(&a, UPSTREAM_CONNECT_TIMEOUT).is_ok()
            });
        if !reachable {
            return Err(Error::NoBroker {
                bootstrap: upstream_bootstrap.to_string(),
                waited: UPSTREAM_CONNECT_TIMEOUT,
                cause: format!("the chaos proxy could not connect to {first}"),
            });
        }
        let shared = Arc::new(Shared::default());
        let bootstrap = shared.route_for(&first).map_err(|e| {
            Error::BadConfig(format!(
                "the chaos proxy could not open a port on 127.0.0.1: {e}"
            ))
        })?;
        Ok(ChaosProxy { shared, bootstrap })
    }

    /// The address clients use as `bootstrap.servers`: `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.to_string()
    }

    /// Every listener so far, the bootstrap one first.
    pub fn routes(&self) -> Vec<Route> {
        lock(&self.shared.routes).clone()
    }

    /// Arms `fault` for the next Produce requests, replacing any fault still
    /// armed; `ProduceFault::None` disarms. Callable from any thread.
    pub fn inject(&self, fault: ProduceFault) {
        let fault = if fault.remaining() == 0 {
            ProduceFault::None
        } else {
            fault
        };
        *lock(&self.shared.fault) = fault;
    }

    /// The fault still armed, with its remaining count.
    pub fn fault(&self) -> ProduceFault {
        *lock(&self.shared.fault)
    }

    /// Arms a drop of the responses to the next `count` requests of `api`
    /// (e.g. `ApiKey::EndTxn`), replacing any such drop still armed; a count
    /// of 0 disarms. Each request is forwarded first, so the broker acts on it.
    /// For Produce prefer [`ChaosProxy::inject`], which also knows that acks=0
    /// requests get no response; an armed `ProduceFault` takes precedence.
    pub fn inject_response_drop(&self, api: ApiKey, count: u32) {
        *lock(&self.shared.response_drop) = (count > 0).then_some(ResponseDrop {
            api_key: api as i16,
            count,
        });
    }

    /// The response drop still armed, with its remaining count.
    pub fn response_drop(&self) -> Option<ResponseDrop> {
        *lock(&self.shared.response_drop)
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        lock(&self.shared.stats).clone()
    }

    /// Closes the listeners and every connection. Idempotent.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let handles: Vec<JoinHandle<()>> =
            std::mem::take(&mut *lock(&self.shared.listeners));
        for handle in handles {
            // An accept thread never panics; if one did, there is nothing to do.
            let _ = handle.join();
        }
        let conns: Vec<Weak<Conn>> = std::mem::take(&mut *lock(&self.shared.conns));
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.close_both();
        }
    }
}

impl std::fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("bootstrap", &self.bootstrap)
            .field("routes", &self.routes())
            .field("fault", &self.fault())
            .field("response_drop", &self.response_drop())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first `host:port` of a bootstrap list, without a `PLAINTEXT://` prefix.
fn first_address(bootstrap: &str) -> Result<String> {
    let first = bootstrap.split(',').next().unwrap_or("").trim();
    let first = match first.find("://") {
        Some(i) => &first[i + 3..],
        None => first,
    };
    let valid = first
        .rsplit_once(':')
        .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .unwrap_or(false);
    if !valid {
        return Err(Error::BadConfig(format!(
            "the chaos proxy needs a broker address like 127.0.0.1:9092, not {bootstrap:?}"
        )));
    }
    Ok(first.to_string())
}

// ---------------------------------------------------------------------------
// Frames and headers: small pure functions, tested without sockets.
// ---------------------------------------------------------------------------

/// Why a frame could not be handled. Any of these closes its connection pair.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame length {0} exceeds the proxy's limit of {MAX_FRAME_BYTES} bytes")]
    TooLong(i32),
    #[error("undecodable request header: {0}")]
    BadHeader(String),
    #[error("a response to correlation id {0}, which was never requested on this connection")]
    UnknownCorrelation(i32),
    #[error("undecodable {api} v{version} message: {detail}")]
    BadBody {
        api: &'static str,
        version: i16,
        detail: String,
    },
    #[error("no proxy listener for broker {0}")]
    Route(String),
}

/// One frame's content, without its 4-byte length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub payload: &'a [u8],
}

/// Reads one size-prefixed frame from the front of `buf`: `Ok(None)` if more
/// bytes are needed, otherwise the frame and how many bytes of `buf` it took
/// (prefix included).
pub fn read_frame(
    buf: &[u8],
) -> std::result::Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    if len as usize > MAX_FRAME_BYTES {
        return Err(FrameError::TooLong(len));
    }
    let end = 4 + len as usize;
    Ok(buf.get(4..end).map(|payload| (Frame { payload }, end)))
}

/// The bytes of a frame: the length prefix, then `payload`.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Accumulates the bytes of one direction of a connection and hands out whole
/// frames, however the stream was split into reads.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, length prefix included, if one is buffered.
    pub fn next_frame(&mut self) -> std::result::Result<Option<&[u8]>, FrameError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        match read_frame(rest)? {
            None => Ok(None),
            Some((_, used)) => {
                let start = self.pos;
                self.pos += used;
                Ok(self.buf.get(start..start + used))
            }
        }
    }

    /// Bytes buffered but not yet handed out.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// What the proxy needs from a request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Bytes of the header: the request body starts here.
    pub header_len: usize,
}

/// Decodes a request header (header v1 or v2, as the api key and version
/// require) with kafka-protocol.
pub fn decode_request_header(
    payload: &[u8],
) -> std::result::Result<RequestInfo, FrameError> {
    let bad = |detail: String| FrameError::BadHeader(detail);
    if payload.len() < 8 {
        return Err(bad(format!(
            "{} bytes, fewer than the 8 of any header",
            payload.len()
        )));
    }
    let api_key = i16::from_be_bytes([payload[0], payload[1]]);
    let api_version = i16::from_be_bytes([payload[2], payload[3]]);
    let api = ApiKey::try_from(api_key)
        .map_err(|_| bad(format!("unknown api key {api_key}")))?;
    let header_version = api.request_header_version(api_version);
    let mut rest = payload;
    let header = RequestHeader::decode(&mut rest, header_version)
        .map_err(|e| bad(format!("{api:?} v{api_version}: {e}")))?;
    Ok(RequestInfo {
        api_key,
        api_version,
        correlation_id: header.correlation_id,
        header_len: payload.len() - rest.len(),
    })
}

/// The `acks` of a Produce request body (after its header).
pub fn produce_acks(body: &[u8], version: i16) -> std::result::Result<i16, FrameError> {
    let bad = |detail: &str| FrameError::BadBody {
        api: "Produce",
        version,
        detail: detail.to_string(),
    };
    let mut r = Reader { buf: body };
    if version >= 3 {
        // transactional_id, a nullable string (compact from v9).
        r.string(version >= 9).map_err(|e| bad(&e))?;
    }
    r.i16().map_err(|e| bad(&e))
}

/// The correlation id of a response: its first four bytes, in both header versions.
pub fn response_correlation_id(payload: &[u8]) -> std::result::Result<i32, FrameError> {
    match payload.get(..4) {
        Some(b) => Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(FrameError::BadBody {
            api: "response header",
            version: 0,
            detail: format!("{} bytes, fewer than a correlation id", payload.len()),
        }),
    }
}

/// Whether responses to `api_key` name brokers, so the proxy must rewrite them.
pub fn names_brokers(api_key: i16) -> bool {
    matches!(
        ApiKey::try_from(api_key),
        Ok(ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster)
    )
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
    let api = match ApiKey::try_from(api_key) {
        Ok(
            api
            @ (ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster),
        ) => api,
        _ => return Ok(None),
    };
    let (name, schema) = match api {
        ApiKey::Metadata => ("Metadata", &METADATA),
        ApiKey::FindCoordinator => ("FindCoordinator", &FIND_COORDINATOR),
        _ => ("DescribeCluster", &DESCRIBE_CLUSTER),
    };
    let bad = |detail: String| FrameError::BadBody {
        api: name,
        version: api_version,
        detail,
    };
    if api_version < schema.versions.0 || api_version > schema.versions.1 {
        return Err(bad(format!(
            "version not supported by kafka-protocol 0.18 ({}..={})",
            schema.versions.0, schema.versions.1
        )));
    }
    let mut body = payload;
    ResponseHeader::decode(&mut body, api.response_header_version(api_version))
        .map_err(|e| bad(format!("header: {e}")))?;
    let header = &payload[..payload.len() - body.len()];
    // kafka-protocol reserves an array's claimed length before reading it:
    // a corrupt count would abort the process, so check every count first.
    skim(schema, body, api_version).map_err(bad)?;

    let mut changed = false;
    let mut remap = |host: &mut StrBytes,
                     port: &mut i32,
                     node: i32|
     -> std::result::Result<(), FrameError> {
        if node < 0 || host.is_empty() || !(1..=65535).contains(port) {
            return Ok(());
        }
        let (new_host, new_port) =
            route(host.as_str(), *port).map_err(FrameError::Route)?;
        if host.as_str() != new_host || *port != new_port {
            *host = StrBytes::from_string(new_host);
            *port = new_port;
            changed = true;
        }
        Ok(())
    };
    let mut out = header.to_vec();
    let mut rest = body;
    let encoded = match api {
        ApiKey::Metadata => {
            let mut m = MetadataResponse::decode(&mut rest, api_version)
                .map_err(|e| bad(e.to_string()))?;
            for b in &mut m.brokers {
                remap(&mut b.host, &mut b.port, b.node_id.0)?;
            }
            m.encode(&mut out, api_version)
        }
        ApiKey::FindCoordinator => {
            let mut m = FindCoordinatorResponse::decode(&mut rest, api_version)
                .map_err(|e| bad(e.to_string()))?;
            if api_version <= 3 {
                remap(&mut m.host, &mut m.port, m.node_id.0)?;
            }
            for c in &mut m.coordinators {
                remap(&mut c.host, &mut c.port, c.node_id.0)?;
            }
            m.encode(&mut out, api_version)
        }
        _ => {
            let mut m = DescribeClusterResponse::decode(&mut rest, api_version)
                .map_err(|e| bad(e.to_string()))?;
            for b in &mut m.brokers {
                remap(&mut b.host, &mut b.port, b.broker_id.0)?;
            }
            m.encode(&mut out, api_version)
        }
    };
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes left over after the message",
            rest.len()
        )));
    }
    encoded.map_err(|e| bad(format!("re-encoding: {e}")))?;
    Ok(if changed { Some(out) } else { None })
}

// ---------------------------------------------------------------------------
// A bounds check of the three responses the proxy decodes. kafka-protocol's
// decoder calls `Vec::with_capacity(count)` with the count the bytes claim: a
// garbage count of two billion brokers is an allocation of hundreds of GB and
// an abort, which no `catch_unwind` can stop. So the proxy first walks the
// message with the same layout and refuses any count larger than the bytes
// left. The round-trip tests keep this layout in step with kafka-protocol's.
// ---------------------------------------------------------------------------

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

struct Schema {
    fields: &'static [Field],
    /// The first flexible version (compact strings and arrays, tagged fields).
    flexible_from: i16,
    /// The versions kafka-protocol 0.18 can decode.
    versions: (i16, i16),
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
static METADATA: Schema = Schema {
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
static FIND_COORDINATOR: Schema = Schema {
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
static DESCRIBE_CLUSTER: Schema = Schema {
    fields: &DESCRIBE_CLUSTER_FIELDS,
    flexible_from: 0,
    versions: (
        DescribeClusterResponse::VERSIONS.min,
        DescribeClusterResponse::VERSIONS.max,
    ),
};

/// Checks that `body` is a well-formed message of `schema` at `version`, with
/// every length within the bytes that follow it and nothing left over.
fn skim(schema: &Schema, body: &[u8], version: i16) -> std::result::Result<(), String> {
    let mut r = Reader { buf: body };
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
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("needs {n} bytes, {} left", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i16(&mut self) -> std::result::Result<i16, String> {
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

    fn string(&mut self, compact: bool) -> std::result::Result<(), String> {
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

// ---------------------------------------------------------------------------
// Sockets and threads.
// ---------------------------------------------------------------------------

/// What to do with one request's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Forward,
    Drop,
    Delay(Duration),
    Cut,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    fault: Mutex<ProduceFault>,
    response_drop: Mutex<Option<ResponseDrop>>,
    stats: Mutex<ProxyStats>,
    routes: Mutex<Vec<Route>>,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    conns: Mutex<Vec<Weak<Conn>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it; the data
    // (counters, lists) is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn bump(&self, f: impl FnOnce(&mut ProxyStats)) {
        f(&mut lock(&self.stats));
    }

    /// The proxy's listener for broker `upstream` (`host:port`), opened on
    /// first use.
    fn route_for(self: &Arc<Self>, upstream: &str) -> io::Result<SocketAddr> {
        let mut routes = lock(&self.routes);
        if let Some(r) = routes.iter().find(|r| r.upstream == upstream) {
            return Ok(r.local);
        }
        if self.stopping() {
            return Err(io::Error::other("the proxy is stopping"));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let shared = self.clone();
        let target = upstream.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("chaos-proxy-{}", local.port()))
            .spawn(move || accept_loop(shared, listener, target))?;
        routes.push(Route {
            local,
            upstream: upstream.to_string(),
        });
        lock(&self.listeners).push(handle);
        Ok(local)
    }

    /// Takes one application of the armed fault for a Produce request.
    fn take_fault(&self) -> Action {
        lock(&self.fault).take()
    }

    /// Takes one armed response drop for a request of `api_key`, if it has one.
    fn take_response_drop(&self, api_key: i16) -> Action {
        let mut armed = lock(&self.response_drop);
        let Some(drop) = armed.as_mut() else {
            return Action::Forward;
        };
        let hit = drop.take(api_key);
        if drop.count == 0 {
            *armed = None;
        }
        if hit {
            Action::Drop
        } else {
            Action::Forward
        }
    }

    fn nap(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(TICK));
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, upstream: String) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((client, _)) => {
                shared.bump(|s| s.connections += 1);
                let shared = shared.clone();
                let upstream = upstream.clone();
                // If no thread can be started the client is simply closed.
                let _ = std::thread::Builder::new()
                    .name("chaos-proxy-conn".into())
                    .spawn(move || serve(shared, client, &upstream));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// One proxied connection: the client's socket and ours to the broker, the
/// requests awaiting responses, and whether the client is still there.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    state: Mutex<ConnState>,
}

#[derive(Default)]
struct ConnState {
    pending: HashMap<i32, Pending>,
    client_gone_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    api_key: i16,
    api_version: i16,
    action: Action,
}

impl Conn {
    fn close_both(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// The client is gone (it closed, or the proxy cut it): stop serving it,
    /// but keep reading the broker's answers to what was already forwarded.
    fn client_gone(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let mut state = lock(&self.state);
        state.client_gone_at.get_or_insert_with(Instant::now);
        if state.pending.is_empty() {
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }
}

fn connect_upstream(upstream: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{upstream} did not resolve"),
    );
    for addr in upstream.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, UPSTREAM_CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn serve(shared: Arc<Shared>, client: TcpStream, upstream: &str) {
    let _ = client.set_nonblocking(false);
    let Ok(upstream) = connect_upstream(upstream) else {
        return; // the client sees its connection closed and tries again
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_read), Ok(client_write), Ok(upstream_read), Ok(upstream_write)) = (
        client.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    let conn = Arc::new(Conn {
        client,
        upstream,
        state: Mutex::new(ConnState::default()),
    });
    {
        let mut conns = lock(&shared.conns);
        if shared.stopping() {
            conn.close_both();
            return;
        }
        conns.retain(|c| c.strong_count() > 0);
        conns.push(Arc::downgrade(&conn));
    }
    let responses = {
        let shared = shared.clone();
        let conn = conn.clone();
        std::thread::Builder::new()
            .name("chaos-proxy-resp".into())
            .spawn(move || pump_responses(&shared, &conn, upstream_read, client_write))
    };
    if responses.is_err() {
        conn.close_both();
        return;
    }
    pump_requests(&shared, &conn, client_read, upstream_write);
}

/// Client to broker: note what each request is, apply the armed faults (to
/// Produce requests, and any armed response drop), forward byte for byte.
fn pump_requests(shared: &Shared, conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let mut frames = FrameReader::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        frames.extend(&chunk[..n]);
        loop {
            let raw = match frames.next_frame() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(_) => return malformed(shared, conn),
            };
            let action = match note_request(shared, conn, &raw[4..]) {
                Ok(action) => action,
                Err(_) => return malformed(shared, conn),
            };
            if to.write_all(raw).is_err() {
                return conn.close_both();
            }
            if action == Action::Cut {
                return conn.client_gone();
            }
        }
    }
    conn.client_gone();
}

/// Records a request before it is forwarded, so its response is recognised.
fn note_request(
    shared: &Shared,
    conn: &Conn,
    payload: &[u8],
) -> std::result::Result<Action, FrameError> {
    let info = decode_request_header(payload)?;
    let mut expects_response = true;
    let mut action = Action::Forward;
    if info.api_key == ApiKey::Produce as i16 {
        let acks = produce_acks(&payload[info.header_len..], info.api_version)?;
        expects_response = acks != 0;
        action = shared.take_fault();
        shared.bump(|s| s.produce_requests += 1);
    }
    if expects_response && action == Action::Forward {
        action = shared.take_response_drop(info.api_key);
    }
    shared.bump(|s| s.count_request(info.api_key));
    let mut state = lock(&conn.state);
    if expects_response {
        state.pending.insert(
            info.correlation_id,
            Pending {
                api_key: info.api_key,
                api_version: info.api_version,
                action,
            },
        );
    }
    if action == Action::Cut {
        shared.bump(|s| s.connections_cut += 1);
        // From now on nothing reaches the client, not even responses already
        // on their way: the connection is gone as far as it knows.
        state.client_gone_at.get_or_insert_with(Instant::now);
    }
    Ok(action)
}

fn malformed(shared: &Shared, conn: &Conn) {
    shared.bump(|s| s.malformed_frames += 1);
    conn.close_both();
}

/// Broker to client: match each response to its request, rewrite broker
/// addresses, apply the fault noted for it.
fn pump_responses(
    shared: &Arc<Shared>,
    conn: &Conn,
    mut from: TcpStream,
    mut to: TcpStream,
) {
    // Wake up now and then to notice a client that went away.
    let _ = from.set_read_timeout(Some(Duration::from_millis(250)));
    let mut frames = FrameReader::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => frames.extend(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.stopping() {
                    break;
                }
                let state = lock(&conn.state);
                match state.client_gone_at {
                    Some(t)
                        if state.pending.is_empty() || t.elapsed() > DRAIN_LIMIT =>
                    {
                        break
                    }
                    _ => continue,
                }
            }
            Err(_) => break,
        }
        loop {
            let raw = match frames.next_frame() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(_) => return malformed(shared, conn),
            };
            let payload = &raw[4..];
            let Ok(correlation_id) = response_correlation_id(payload) else {
                return malformed(shared, conn);
            };
            let (request, client_there) = {
                let mut state = lock(&conn.state);
                (
                    state.pending.remove(&correlation_id),
                    state.client_gone_at.is_none(),
                )
            };
            let Some(request) = request else {
                return malformed(shared, conn);
            };
            if !client_there {
                continue; // answered after the client left: nobody to tell
            }
            let rewritten = if names_brokers(request.api_key) {
                let mut route = |host: &str, port: i32| {
                    let upstream = if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    };
                    shared
                        .route_for(&upstream)
                        .map(|local| (local.ip().to_string(), local.port() as i32))
                        .map_err(|e| format!("{upstream}: {e}"))
                };
                match rewrite_response(
                    request.api_key,
                    request.api_version,
                    payload,
                    &mut route,
                ) {
                    Ok(r) => r.map(|p| encode_frame(&p)),
                    Err(FrameError::Route(_)) => return conn.close_both(),
                    Err(_) => return malformed(shared, conn),
                }
            } else {
                None
            };
            let out: &[u8] = rewritten.as_deref().unwrap_or(raw);
            match request.action {
                Action::Drop => {
                    shared.bump(|s| s.count_drop(request.api_key));
                    continue;
                }
                Action::Delay(d) => {
                    shared.bump(|s| s.responses_delayed += 1);
                    shared.nap(d);
                }
                Action::Forward | Action::Cut => {}
            }
            if to.write_all(out).is_err() {
                conn.client_gone();
            }
        }
        let state = lock(&conn.state);
        if state.client_gone_at.is_some() && state.pending.is_empty() {
            break;
        }
    }
    conn.close_both();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{
        ApiVersionsRequest, BrokerId, EndTxnRequest, MetadataRequest, ProduceRequest,
        TopicName, TransactionalId,
    };
    use proptest::prelude::*;

    // -- helpers ----------------------------------------------------------

    /// A whole request frame, encoded with kafka-protocol.
    fn request_frame<M: Encodable>(
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
    fn response_payload<M: Encodable>(
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

    fn decode_response<M: Decodable>(
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
    fn test_route(host: &str, port: i32) -> std::result::Result<(String, i32), String> {
        let _ = host;
        Ok(("127.0.0.1".to_string(), 20000 + port % 10000))
    }

    fn str_bytes(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    // -- frames -----------------------------------------------------------

    #[test]
    fn read_frame_needs_four_bytes_then_the_whole_payload() {
        assert_eq!(read_frame(&[]), Ok(None));
        assert_eq!(read_frame(&[0, 0, 0]), Ok(None));
        assert_eq!(read_frame(&[0, 0, 0, 2, 7]), Ok(None));
        let (frame, used) = read_frame(&[0, 0, 0, 2, 7, 8, 9]).unwrap().unwrap();
        assert_eq!((frame.payload, used), (&[7u8, 8][..], 6));
        let (frame, used) = read_frame(&[0, 0, 0, 0, 1]).unwrap().unwrap();
        assert_eq!((frame.payload, used), (&[][..], 4));
        assert_eq!(
            read_frame(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::NegativeLength(-1))
        );
        let too_long = (MAX_FRAME_BYTES as i32 + 1).to_be_bytes();
        assert_eq!(
            read_frame(&too_long),
            Err(FrameError::TooLong(MAX_FRAME_BYTES as i32 + 1))
        );
        // The limit itself is still a frame (waiting for its bytes).
        assert_eq!(
            read_frame(&(MAX_FRAME_BYTES as i32).to_be_bytes()),
            Ok(None)
        );
    }

    #[test]
    fn request_headers_decode_at_every_header_version() {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000);
        for version in 3..=13 {
            let frame = request_frame(
                ApiKey::Produce,
                version,
                1000 + version as i32,
                &produce,
            );
            let info = decode_request_header(&frame[4..]).unwrap();
            assert_eq!(
                (info.api_key, info.api_version, info.correlation_id),
                (0, version, 1000 + version as i32)
            );
            // header v1: 8 bytes + client id (2 + 10); v2 adds one byte of tagged fields.
            let expected = if version >= 9 { 21 } else { 20 };
            assert_eq!(info.header_len, expected, "v{version}");
        }
        let frame =
            request_frame(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default());
        assert_eq!(
            decode_request_header(&frame[4..]).unwrap().correlation_id,
            7
        );
        // Unknown api key, too short, a client id longer than the frame.
        assert!(decode_request_header(&[0x7f, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_request_header(&[0, 3, 0, 12]).is_err());
        assert!(decode_request_header(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 50, b'x']).is_err());
    }

    #[test]
    fn produce_acks_are_read_in_every_version_with_and_without_a_transactional_id() {
        for version in 3..=13 {
            for acks in [0i16, 1, -1] {
                for txn in [None, Some("a-transactional-id")] {
                    let body = ProduceRequest::default()
                        .with_acks(acks)
                        .with_timeout_ms(1234)
                        .with_transactional_id(
                            txn.map(|t| TransactionalId(str_bytes(t))),
                        );
                    let frame = request_frame(ApiKey::Produce, version, 1, &body);
                    let info = decode_request_header(&frame[4..]).unwrap();
                    let got =
                        produce_acks(&frame[4 + info.header_len..], version).unwrap();
                    assert_eq!(got, acks, "v{version} txn={txn:?}");
                }
            }
        }
        assert!(produce_acks(&[0, 5, b'a'], 3).is_err());
    }

    #[test]
    fn an_armed_fault_counts_down_and_disarms() {
        let mut f = ProduceFault::DropResponses { count: 2 };
        assert_eq!(f.take(), Action::Drop);
        assert_eq!(f, ProduceFault::DropResponses { count: 1 });
        assert_eq!(f.take(), Action::Drop);
        assert_eq!(f, ProduceFault::None);
        assert_eq!(f.take(), Action::Forward);
        let d = Duration::from_millis(5);
        let mut f = ProduceFault::DelayResponses { count: 1, delay: d };
        assert_eq!(f.take(), Action::Delay(d));
        assert_eq!(f.take(), Action::Forward);
        let mut f = ProduceFault::CutAfterRequest { count: 1 };
        assert_eq!(f.take(), Action::Cut);
        assert_eq!(f, ProduceFault::None);
    }

    // -- rewriting --------------------------------------------------------

    /// A topic: name, then (partition, leader, replicas) per partition.
    type TopicSpec = (String, Vec<(i32, i32, Vec<i32>)>);

    /// A Metadata response with every field its version has set to something.
    fn metadata(
        version: i16,
        brokers: &[(i32, String, i32, Option<String>)],
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
        m.topics = topics
            .iter()
            .map(|(name, partitions)| {
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
                        p.replica_nodes =
                            replicas.iter().map(|&r| BrokerId(r)).collect();
                        p.isr_nodes =
                            replicas.iter().take(1).map(|&r| BrokerId(r)).collect();
                        if version >= 5 {
                            p.offline_replicas =
                                replicas.iter().skip(2).map(|&r| BrokerId(r)).collect();
                        }
                        p
                    })
                    .collect();
                t
            })
            .collect();
        if (8..=10).contains(&version) {
            m.cluster_authorized_operations = 0x00f0;
        }
        if version >= 9 {
            m.unknown_tagged_fields
                .insert(99, str_bytes("kept").into_bytes());
        }
        m
    }

    /// Encodes `m` at `version` and decodes it again: the form the wire keeps.
    fn canonical(m: &MetadataResponse, version: i16) -> MetadataResponse {
        let payload = response_payload(ApiKey::Metadata, version, 1, m);
        decode_response::<MetadataResponse>(ApiKey::Metadata, version, &payload).1
    }

    fn broker_strategy() -> impl Strategy<Value = (i32, String, i32, Option<String>)> {
        (
            0..1000i32,
            "[a-z0-9.-]{1,24}",
            1..=65535i32,
            proptest::option::of("[a-z0-9-]{1,8}"),
        )
    }

    fn topic_strategy() -> impl Strategy<Value = TopicSpec> {
        (
            "[a-z_][a-z0-9._-]{0,20}",
            proptest::collection::vec(
                (0..64i32, -1..5i32, proptest::collection::vec(0..5i32, 0..4)),
                0..4,
            ),
        )
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

        #[test]
        fn arbitrary_bytes_never_panic_the_frame_reader(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match read_frame(&bytes) {
                Ok(Some((frame, used))) => {
                    prop_assert!(used <= bytes.len());
                    prop_assert_eq!(frame.payload.len() + 4, used);
                }
                Ok(None) => {}
                Err(FrameError::NegativeLength(n)) => prop_assert!(n < 0),
                Err(FrameError::TooLong(n)) => prop_assert!(n as usize > MAX_FRAME_BYTES),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
            let mut reader = FrameReader::new();
            reader.extend(&bytes);
            while let Ok(Some(_)) = reader.next_frame() {}
        }

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

        #[test]
        fn a_frame_split_at_any_point_reassembles(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            before in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let first = encode_frame(&before);
            let frame = encode_frame(&payload);
            for split in 0..=frame.len() {
                if split < frame.len() {
                    prop_assert_eq!(read_frame(&frame[..split]), Ok(None));
                }
                let mut reader = FrameReader::new();
                reader.extend(&first);
                reader.extend(&frame[..split]);
                prop_assert_eq!(reader.next_frame().unwrap(), Some(&first[..]));
                if split < frame.len() {
                    prop_assert_eq!(reader.next_frame().unwrap(), None);
                }
                reader.extend(&frame[split..]);
                if split < frame.len() {
                    prop_assert_eq!(reader.next_frame().unwrap(), Some(&frame[..]));
                } else {
                    prop_assert_eq!(reader.next_frame().unwrap(), Some(&frame[..]));
                }
                prop_assert_eq!(reader.next_frame().unwrap(), None);
                prop_assert_eq!(reader.pending_bytes(), 0);
            }
        }

        #[test]
        fn a_stream_of_frames_chunked_anyhow_comes_out_whole_and_in_order(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..10),
            chunk_sizes in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| encode_frame(p)).collect();
            let mut reader = FrameReader::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut at = 0;
            let mut sizes = chunk_sizes.iter().cycle();
            while at < stream.len() {
                let n = (*sizes.next().unwrap()).min(stream.len() - at);
                reader.extend(&stream[at..at + n]);
                at += n;
                while let Some(raw) = reader.next_frame().unwrap() {
                    got.push(raw[4..].to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
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

    // -- sockets ----------------------------------------------------------

    /// A stand-in broker speaking raw frames: it answers every request for
    /// which `answer` gives a payload, and remembers every request header.
    struct FakeBroker {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<RequestInfo>>>,
    }

    type Answer = dyn Fn(&RequestInfo) -> Option<Vec<u8>> + Send + Sync;

    impl FakeBroker {
        fn start(answer: Arc<Answer>) -> FakeBroker {
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
                                    if stream
                                        .write_all(&encode_frame(&payload))
                                        .is_err()
                                    {
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
        fn simple() -> FakeBroker {
            FakeBroker::start(Arc::new(|info: &RequestInfo| {
                if info.correlation_id < 0 {
                    return None;
                }
                let mut p = info.correlation_id.to_be_bytes().to_vec();
                p.extend_from_slice(b"ok");
                Some(p)
            }))
        }

        fn requests(&self) -> Vec<RequestInfo> {
            lock(&self.seen).clone()
        }
    }

    fn connect(proxy: &ChaosProxy) -> TcpStream {
        let s = TcpStream::connect(proxy.bootstrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Reads one response frame's payload; `None` if the connection closed.
    fn read_response(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut payload = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    fn produce_frame(correlation_id: i32, acks: i16) -> Vec<u8> {
        let body = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000);
        request_frame(ApiKey::Produce, 9, correlation_id, &body)
    }

    fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
        request_frame(
            ApiKey::ApiVersions,
            3,
            correlation_id,
            &ApiVersionsRequest::default(),
        )
    }

    /// Waits until `cond` holds, for at most five seconds.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_garbage_frame_closes_its_connection_and_a_good_one_still_works() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();

        let mut bad = connect(&proxy);
        let mut good = connect(&proxy);
        good.write_all(&api_versions_frame(1)).unwrap();
        assert_eq!(
            read_response(&mut good).unwrap(),
            [&1i32.to_be_bytes()[..], b"ok"].concat()
        );

        // A negative length: the proxy hangs up on this connection only.
        bad.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
        assert_eq!(read_response(&mut bad), None);
        eventually("the malformed frame to be counted", || {
            proxy.stats().malformed_frames == 1
        });

        // The other connection, and new ones, carry on.
        good.write_all(&api_versions_frame(2)).unwrap();
        assert_eq!(read_response(&mut good).unwrap()[..4], 2i32.to_be_bytes());
        let mut again = connect(&proxy);
        again.write_all(&api_versions_frame(3)).unwrap();
        assert_eq!(read_response(&mut again).unwrap()[..4], 3i32.to_be_bytes());

        // An undecodable header (unknown api key) is malformed too.
        let mut bad = connect(&proxy);
        bad.write_all(&encode_frame(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]))
            .unwrap();
        assert_eq!(read_response(&mut bad), None);
        eventually("the second malformed frame", || {
            proxy.stats().malformed_frames == 2
        });
        good.write_all(&api_versions_frame(4)).unwrap();
        assert_eq!(read_response(&mut good).unwrap()[..4], 4i32.to_be_bytes());
        // The broker never saw a byte of the garbage.
        let seen: Vec<i32> =
            broker.requests().iter().map(|r| r.correlation_id).collect();
        assert_eq!(seen, [1, 2, 3, 4]);
        assert_eq!(proxy.stats().connections, 4);
    }

    #[test]
    fn a_response_nobody_asked_for_closes_that_connection_only() {
        // The broker answers correlation id 66 with 67.
        let broker = FakeBroker::start(Arc::new(|info: &RequestInfo| {
            let id = if info.correlation_id == 66 {
                67
            } else {
                info.correlation_id
            };
            Some(id.to_be_bytes().to_vec())
        }));
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut liar = connect(&proxy);
        let mut good = connect(&proxy);
        liar.write_all(&api_versions_frame(66)).unwrap();
        assert_eq!(read_response(&mut liar), None);
        eventually("the malformed response", || {
            proxy.stats().malformed_frames == 1
        });
        good.write_all(&api_versions_frame(5)).unwrap();
        assert_eq!(read_response(&mut good).unwrap(), 5i32.to_be_bytes());
    }

    #[test]
    fn dropped_responses_are_swallowed_after_the_request_was_forwarded() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        proxy.inject(ProduceFault::DropResponses { count: 1 });
        client.write_all(&produce_frame(1, -1)).unwrap();
        // A request of another api is not counted against the fault.
        client.write_all(&api_versions_frame(2)).unwrap();
        client.write_all(&produce_frame(3, -1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 2i32.to_be_bytes());
        assert_eq!(read_response(&mut client).unwrap()[..4], 3i32.to_be_bytes());
        let seen: Vec<(i16, i32)> = broker
            .requests()
            .iter()
            .map(|r| (r.api_key, r.correlation_id))
            .collect();
        assert_eq!(seen, [(0, 1), (18, 2), (0, 3)]);
        let stats = proxy.stats();
        assert_eq!((stats.produce_requests, stats.responses_dropped), (2, 1));
        assert_eq!(proxy.fault(), ProduceFault::None);
        // The connection is still open and in use.
        client.write_all(&produce_frame(4, 1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 4i32.to_be_bytes());
    }

    fn end_txn_frame(correlation_id: i32) -> Vec<u8> {
        let body = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_committed(true);
        request_frame(ApiKey::EndTxn, 1, correlation_id, &body)
    }

    #[test]
    fn an_armed_response_drop_swallows_only_its_api_and_counts_down() {
        let mut d = ResponseDrop {
            api_key: ApiKey::EndTxn as i16,
            count: 2,
        };
        assert!(!d.take(ApiKey::Produce as i16));
        assert!(d.take(ApiKey::EndTxn as i16));
        assert!(d.take(ApiKey::EndTxn as i16));
        assert!(!d.take(ApiKey::EndTxn as i16), "used up");
        assert_eq!(d.count, 0);
    }

    #[test]
    fn an_end_txn_response_is_dropped_once_and_produce_faults_still_work() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        proxy.inject_response_drop(ApiKey::EndTxn, 1);
        assert_eq!(
            proxy.response_drop(),
            Some(ResponseDrop {
                api_key: 26,
                count: 1
            })
        );
        // A Produce request and an ApiVersions request pass untouched.
        client.write_all(&produce_frame(1, -1)).unwrap();
        client.write_all(&api_versions_frame(2)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 1i32.to_be_bytes());
        assert_eq!(read_response(&mut client).unwrap()[..4], 2i32.to_be_bytes());
        // The EndTxn reaches the broker; its answer never reaches the client.
        client.write_all(&end_txn_frame(3)).unwrap();
        client.write_all(&end_txn_frame(4)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 4i32.to_be_bytes());
        assert_eq!(proxy.response_drop(), None, "used up and disarmed");
        let seen: Vec<(i16, i32)> = broker
            .requests()
            .iter()
            .map(|r| (r.api_key, r.correlation_id))
            .collect();
        assert_eq!(seen, [(0, 1), (18, 2), (26, 3), (26, 4)]);
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.requests_of(ApiKey::EndTxn),
                stats.dropped_of(ApiKey::EndTxn)
            ),
            (2, 1)
        );
        assert_eq!(stats.requests_of(ApiKey::Produce), 1);
        assert_eq!(
            stats.responses_dropped, 0,
            "no Produce response was dropped"
        );
        // A Produce fault armed alongside works as before.
        proxy.inject(ProduceFault::DropResponses { count: 1 });
        proxy.inject_response_drop(ApiKey::EndTxn, 1);
        client.write_all(&produce_frame(5, -1)).unwrap();
        client.write_all(&end_txn_frame(6)).unwrap();
        client.write_all(&produce_frame(7, -1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 7i32.to_be_bytes());
        let stats = proxy.stats();
        assert_eq!(stats.responses_dropped, 1);
        assert_eq!(stats.dropped_of(ApiKey::Produce), 1);
        assert_eq!(stats.dropped_of(ApiKey::EndTxn), 2);
        // A count of 0 disarms.
        proxy.inject_response_drop(ApiKey::EndTxn, 3);
        proxy.inject_response_drop(ApiKey::EndTxn, 0);
        assert_eq!(proxy.response_drop(), None);
        let json = serde_json::to_string(&stats).unwrap();
        assert!(json.contains("\"EndTxn\":2"), "{json}");
    }

    #[test]
    fn delayed_responses_arrive_late_and_in_order() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        let delay = Duration::from_millis(400);
        proxy.inject(ProduceFault::DelayResponses { count: 1, delay });
        let started = Instant::now();
        client.write_all(&produce_frame(1, -1)).unwrap();
        client.write_all(&api_versions_frame(2)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 1i32.to_be_bytes());
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
        assert_eq!(read_response(&mut client).unwrap()[..4], 2i32.to_be_bytes());
        assert_eq!(proxy.stats().responses_delayed, 1);
        // Disarmed: the next one is quick.
        let started = Instant::now();
        client.write_all(&produce_frame(3, -1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 3i32.to_be_bytes());
        assert!(started.elapsed() < delay);
    }

    #[test]
    fn a_cut_closes_the_client_after_the_request_reached_the_broker() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        client.write_all(&produce_frame(1, -1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 1i32.to_be_bytes());
        proxy.inject(ProduceFault::CutAfterRequest { count: 1 });
        client.write_all(&produce_frame(2, -1)).unwrap();
        assert_eq!(
            read_response(&mut client),
            None,
            "the client must hear nothing"
        );
        eventually("the broker to get the request", || {
            broker.requests().len() == 2
        });
        assert_eq!(broker.requests()[1].correlation_id, 2);
        assert_eq!(proxy.stats().connections_cut, 1);
        // A new connection works normally.
        let mut client = connect(&proxy);
        client.write_all(&produce_frame(3, -1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 3i32.to_be_bytes());
    }

    #[test]
    fn acks_zero_produce_requests_count_but_expect_no_response() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        proxy.inject(ProduceFault::DropResponses { count: 1 });
        // The fake broker is told (by the negative id) not to answer acks=0.
        client.write_all(&produce_frame(-1, 0)).unwrap();
        client.write_all(&produce_frame(2, 1)).unwrap();
        assert_eq!(read_response(&mut client).unwrap()[..4], 2i32.to_be_bytes());
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.produce_requests,
                stats.responses_dropped,
                stats.malformed_frames
            ),
            (2, 0, 0)
        );
        assert_eq!(
            proxy.fault(),
            ProduceFault::None,
            "the acks=0 request used the fault up"
        );
    }

    #[test]
    fn brokers_named_in_metadata_get_listeners_that_lead_to_them() {
        let second = FakeBroker::simple();
        let second_addr = second.addr;
        let first = FakeBroker::start(Arc::new(move |info: &RequestInfo| {
            let me = MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(str_bytes("127.0.0.1"))
                .with_port(0); // filled in below
            let other = MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(str_bytes(&second_addr.ip().to_string()))
                .with_port(second_addr.port() as i32);
            let mut m = MetadataResponse::default();
            m.brokers = vec![me.with_port(1), other];
            Some(response_payload(
                ApiKey::Metadata,
                info.api_version,
                info.correlation_id,
                &m,
            ))
        }));
        let proxy = ChaosProxy::start(&first.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        client
            .write_all(&request_frame(
                ApiKey::Metadata,
                12,
                9,
                &MetadataRequest::default(),
            ))
            .unwrap();
        let payload = read_response(&mut client).unwrap();
        let (corr, m) =
            decode_response::<MetadataResponse>(ApiKey::Metadata, 12, &payload);
        assert_eq!(corr, 9);
        let routes = proxy.routes();
        assert_eq!(routes.len(), 3, "{routes:?}");
        assert_eq!(routes[0].local.to_string(), proxy.bootstrap());
        for b in &m.brokers {
            assert_eq!(b.host.as_str(), "127.0.0.1");
            let route = routes
                .iter()
                .find(|r| r.local.port() as i32 == b.port)
                .unwrap();
            assert_ne!(route.local.to_string(), proxy.bootstrap());
        }
        // Broker 2's listener leads to broker 2.
        let port2 = m.brokers[1].port;
        let mut to_second = TcpStream::connect(("127.0.0.1", port2 as u16)).unwrap();
        to_second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        to_second.write_all(&api_versions_frame(77)).unwrap();
        assert_eq!(
            read_response(&mut to_second).unwrap()[..4],
            77i32.to_be_bytes()
        );
        assert_eq!(second.requests().len(), 1);
        // Asking again reuses the listeners.
        client
            .write_all(&request_frame(
                ApiKey::Metadata,
                12,
                10,
                &MetadataRequest::default(),
            ))
            .unwrap();
        let payload = read_response(&mut client).unwrap();
        let (_, again) =
            decode_response::<MetadataResponse>(ApiKey::Metadata, 12, &payload);
        assert_eq!(again, m);
        assert_eq!(proxy.routes().len(), 3);
    }

    #[test]
    fn stopping_closes_the_listeners_and_the_connections() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let bootstrap = proxy.bootstrap();
        let mut client = connect(&proxy);
        client.write_all(&api_versions_frame(1)).unwrap();
        assert!(read_response(&mut client).is_some());
        drop(proxy);
        assert_eq!(read_response(&mut client), None);
        assert!(
            TcpStream::connect(&bootstrap).is_err(),
            "the listener is closed"
        );
    }

    #[test]
    fn the_proxy_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ChaosProxy>();
        let broker = FakeBroker::simple();
        let proxy = Arc::new(ChaosProxy::start(&broker.addr.to_string()).unwrap());
        let other = proxy.clone();
        std::thread::spawn(move || {
            other.inject(ProduceFault::CutAfterRequest { count: 2 })
        })
        .join()
        .unwrap();
        assert_eq!(proxy.fault(), ProduceFault::CutAfterRequest { count: 2 });
        proxy.inject(ProduceFault::DropResponses { count: 0 });
        assert_eq!(proxy.fault(), ProduceFault::None, "a count of 0 disarms");
        let shown = format!("{proxy:?}");
        assert!(shown.contains(&proxy.bootstrap()), "{shown}");
        let json = serde_json::to_string(&proxy.stats()).unwrap();
        assert!(json.contains("\"responses_dropped\":0"), "{json}");
    }

    #[test]
    fn start_refuses_a_bootstrap_without_a_broker() {
        let closed = TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let err = ChaosProxy::start(&closed.to_string()).err().unwrap();
        assert!(matches!(err, Error::NoBroker { .. }), "{err}");
        assert!(ChaosProxy::start("no-port-here").is_err());
        assert_eq!(first_address("PLAINTEXT://h:1, x:2").unwrap(), "h:1");
    }
}
