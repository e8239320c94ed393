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
//!
//! The parts: `frames` (frames and request headers, small pure functions),
//! `rewrite` (broker addresses in responses), `bounds` (a bounds check run
//! before kafka-protocol decodes a response) and `sockets` (listeners,
//! connections and the threads that pump them). This file is the proxy's
//! public face: the fault types, the stats, and [`ChaosProxy`] itself.

mod bounds;
mod frames;
mod held;
mod rewrite;
mod sockets;
#[cfg(test)]
mod testkit;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Doing, Error, Result};
use crate::support::lock;
use sockets::{connect_upstream, Action, Shared, UPSTREAM_CONNECT_TIMEOUT};

/// Kafka's api keys (`ApiKey::EndTxn`, ...): see [`ChaosProxy::inject_response_drop`].
pub use kafka_protocol::messages::ApiKey;

pub use frames::{
    decode_request_header, encode_frame, produce_acks, read_frame,
    response_correlation_id, Frame, FrameError, FrameReader, RequestInfo,
    MAX_FRAME_BYTES,
};
pub use held::{
    error_name, now_ms, produce_batches, produce_errors, BatchHeader, HeldRequest,
    RequestHold,
};
pub use rewrite::{names_brokers, rewrite_response, Router};

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
    /// Requests held back by [`ChaosProxy::inject_request_hold`], each with
    /// the broker's answer once it came.
    #[serde(default)]
    pub held: Vec<HeldRequest>,
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

/// The proxy reads each request and answer to find the ones to lose; through
/// TLS it would see only ciphertext, so a TLS client setting is refused.
fn refuse_tls(upstream_bootstrap: &str, settings: &[(String, String)]) -> Result<()> {
    let protocol = settings
        .iter()
        .find(|(k, _)| k == "security.protocol")
        .map(|(_, v)| v.to_ascii_uppercase());
    match protocol {
        Some(p) if p.contains("SSL") => Err(Error::Unsupported {
            what: "a scenario through the chaos proxy (lost acknowledgements, lost EndTxn)".into(),
            backend: format!("the cluster at {upstream_bootstrap} (security.protocol={p})"),
            why: "the proxy loses chosen answers by reading Kafka's requests and answers, and \
                  over TLS it sees only ciphertext. Run these scenarios on the course's local \
                  broker (`cargo xtask kafka up`), or on a listener without TLS"
                .into(),
        }),
        _ => Ok(()),
    }
}

impl ChaosProxy {
    /// Starts a proxy for the cluster at `upstream_bootstrap` (a bootstrap list;
    /// the proxy's bootstrap listener leads to its first address). Brokers the
    /// cluster names later get listeners of their own as they are learned.
    pub fn start(upstream_bootstrap: &str) -> Result<ChaosProxy> {
        refuse_tls(upstream_bootstrap, &crate::connection::settings()?)?;
        let first = first_address(upstream_bootstrap)?;
        // Fail early, with the course's usual advice, if nothing is there.
        if connect_upstream(&first).is_err() {
            return Err(Error::NoBroker {
                bootstrap: upstream_bootstrap.to_string(),
                waited: UPSTREAM_CONNECT_TIMEOUT,
                doing: "starting the chaos proxy".into(),
                cause: format!("the chaos proxy could not connect to {first}"),
            });
        }
        let shared = Arc::new(Shared::default());
        let bootstrap = shared
            .route_for(&first)
            .doing("the chaos proxy could not open a port on 127.0.0.1")?;
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

    /// Arms a hold of the next `count` requests of `api` (e.g. the next
    /// transactional Produce): each waits in the proxy for `delay` before it
    /// is forwarded, together with whatever follows it on that connection, as
    /// on a network path that stalls. The client may time out, close the
    /// connection and go on; the held request still reaches the broker late,
    /// and its answer is noted in [`ProxyStats::held`] whoever hears it.
    /// A count of 0 disarms.
    pub fn inject_request_hold(&self, api: ApiKey, count: u32, delay: Duration) {
        *lock(&self.shared.request_hold) = (count > 0).then_some(RequestHold {
            api_key: api as i16,
            count,
            delay,
        });
    }

    /// The request hold still armed, with its remaining count.
    pub fn request_hold(&self) -> Option<RequestHold> {
        *lock(&self.shared.request_hold)
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
        self.shared.stop();
    }
}

impl std::fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("bootstrap", &self.bootstrap)
            .field("routes", &self.routes())
            .field("fault", &self.fault())
            .field("response_drop", &self.response_drop())
            .field("request_hold", &self.request_hold())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_client_setting_is_refused_with_why_and_plain_sasl_is_not() {
        let with = |p: &str| vec![("security.protocol".to_string(), p.to_string())];
        let e = refuse_tls("k:9093", &with("sasl_ssl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("security.protocol=SASL_SSL"), "{e}");
        assert!(e.contains("over TLS it sees only ciphertext"), "{e}");
        assert!(refuse_tls("k:9093", &with("SSL")).is_err());
        assert!(refuse_tls("k:9092", &with("SASL_PLAINTEXT")).is_ok());
        assert!(refuse_tls("k:9092", &[]).is_ok());
    }
    use std::net::TcpListener;
    use testkit::FakeBroker;

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
