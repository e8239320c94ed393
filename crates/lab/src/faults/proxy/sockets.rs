//! Sockets and threads.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use super::frames::{
    decode_request_header, encode_frame, produce_acks, response_correlation_id,
    FrameError, FrameReader,
};
use super::held::{now_ms, HeldRequest, RequestHold};
use super::rewrite::{names_brokers, rewrite_response};
use super::{ProduceFault, ProxyStats, ResponseDrop, Route};
use crate::support::lock;

/// How long a connection whose client went away is kept open upstream, so that
/// the responses to requests already forwarded are still read (and dropped).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How long the proxy waits for a broker to accept a connection.
pub(super) const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);

/// How many bytes one read from a socket takes at most.
const CHUNK_BYTES: usize = 64 * 1024;

/// What to do with one request's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Forward,
    Drop,
    Delay(Duration),
    Cut,
}

#[derive(Default)]
pub(super) struct Shared {
    stopping: AtomicBool,
    pub(super) fault: Mutex<ProduceFault>,
    pub(super) response_drop: Mutex<Option<ResponseDrop>>,
    pub(super) request_hold: Mutex<Option<RequestHold>>,
    pub(super) stats: Mutex<ProxyStats>,
    pub(super) routes: Mutex<Vec<Route>>,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    conns: Mutex<Vec<Weak<Conn>>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Closes the listeners and every connection. Idempotent.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.listeners));
        for handle in handles {
            // An accept thread never panics; if one did, there is nothing to do.
            let _ = handle.join();
        }
        let conns: Vec<Weak<Conn>> = std::mem::take(&mut *lock(&self.conns));
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.close_both();
        }
    }

    fn bump(&self, f: impl FnOnce(&mut ProxyStats)) {
        f(&mut lock(&self.stats));
    }

    /// The proxy's listener for broker `upstream` (`host:port`), opened on
    /// first use.
    pub(super) fn route_for(
        self: &Arc<Self>,
        upstream: &str,
    ) -> io::Result<SocketAddr> {
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

    /// Where clients go for broker `(host, port)`: the `(host, port)` of its
    /// listener, a [`Router`](super::Router) for [`rewrite_response`].
    fn route_to(
        self: &Arc<Self>,
        host: &str,
        port: i32,
    ) -> Result<(String, i32), String> {
        let upstream = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.route_for(&upstream)
            .map(|local| (local.ip().to_string(), local.port() as i32))
            .map_err(|e| format!("{upstream}: {e}"))
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

    /// Takes one armed hold for a request of `api_key`: how long to hold it.
    fn take_hold(&self, api_key: i16) -> Option<Duration> {
        let mut armed = lock(&self.request_hold);
        let hold = armed.as_mut()?.take(api_key);
        if armed.is_some_and(|h| h.count == 0) {
            *armed = None;
        }
        hold
    }

    /// Notes a held request's answer (`payload`: the response frame).
    fn held_answered(&self, index: usize, payload: &[u8], client_gone: bool) {
        if let Some(h) = lock(&self.stats).held.get_mut(index) {
            h.answered(payload, client_gone);
        }
    }

    /// Keeps `conn` so that [`Shared::stop`] can close it; false (and `conn`
    /// closed) if the proxy is already stopping.
    fn track(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = lock(&self.conns);
        if self.stopping() {
            conn.close_both();
            return false;
        }
        conns.retain(|c| c.strong_count() > 0);
        conns.push(Arc::downgrade(conn));
        true
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

impl ConnState {
    /// The client is gone and no response is owed to it any more.
    fn nothing_owed(&self) -> bool {
        self.client_gone_at.is_some() && self.pending.is_empty()
    }

    /// The client has been gone too long to wait for what is still owed.
    fn drain_over(&self) -> bool {
        self.client_gone_at
            .is_some_and(|t| t.elapsed() > DRAIN_LIMIT)
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    api_key: i16,
    api_version: i16,
    action: Action,
    /// Held back: its index in [`ProxyStats::held`].
    held: Option<usize>,
}

impl Conn {
    fn close_both(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// Whether the client has closed its side (or reset it), without taking
    /// any of its bytes. Only the request pump may ask: it alone reads.
    fn client_closed(&self) -> bool {
        if self.client.set_nonblocking(true).is_err() {
            return false;
        }
        let closed = match self.client.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = self.client.set_nonblocking(false);
        closed
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

/// Why a pump stops before its socket ends, and so how the pair is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A frame that could not be handled: counted, both sides closed.
    Malformed,
    /// A socket failed, or a broker has no listener: both sides closed.
    Close,
    /// The client is cut: the broker side still drains what is owed.
    ClientGone,
}

impl Stop {
    fn apply(self, shared: &Shared, conn: &Conn) {
        match self {
            Stop::Malformed => malformed(shared, conn),
            Stop::Close => conn.close_both(),
            Stop::ClientGone => conn.client_gone(),
        }
    }
}

/// What one read from a socket gave.
enum Fill {
    /// Bytes, now buffered.
    Read,
    /// Nothing before the socket's read timeout.
    Idle,
    /// The socket is closed or failed.
    End,
}

/// One direction of a proxied connection as it is read: the socket, and the
/// bytes not yet handed out as whole frames.
struct Inbound {
    socket: TcpStream,
    frames: FrameReader,
    chunk: Vec<u8>,
}

impl Inbound {
    fn new(socket: TcpStream) -> Inbound {
        Inbound {
            socket,
            frames: FrameReader::new(),
            chunk: vec![0u8; CHUNK_BYTES],
        }
    }

    /// Reads once from the socket (again if the read was interrupted).
    fn fill(&mut self) -> Fill {
        loop {
            match self.socket.read(&mut self.chunk) {
                Ok(0) => return Fill::End,
                Ok(n) => {
                    self.frames.extend(&self.chunk[..n]);
                    return Fill::Read;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Fill::Idle
                }
                Err(_) => return Fill::End,
            }
        }
    }

    /// Hands each whole frame buffered so far (length prefix included) to
    /// `handle`, until one stops the pump; a frame that cannot even be cut
    /// out of the stream is [`Stop::Malformed`].
    fn each_frame(
        &mut self,
        mut handle: impl FnMut(&[u8]) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        while let Some(raw) = self.frames.next_frame().map_err(|_| Stop::Malformed)? {
            handle(raw)?;
        }
        Ok(())
    }
}

pub(super) fn connect_upstream(upstream: &str) -> io::Result<TcpStream> {
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
    if !shared.track(&conn) {
        return;
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
fn pump_requests(shared: &Shared, conn: &Conn, from: TcpStream, mut to: TcpStream) {
    let mut from = Inbound::new(from);
    // Anything but bytes (a close, an error) means the client is gone.
    while let Fill::Read = from.fill() {
        let forwarded =
            from.each_frame(|raw| forward_request(shared, conn, raw, &mut to));
        if let Err(stop) = forwarded {
            return stop.apply(shared, conn);
        }
    }
    conn.client_gone();
}

/// One request frame (`raw`, length prefix included): noted, then forwarded.
fn forward_request(
    shared: &Shared,
    conn: &Conn,
    raw: &[u8],
    to: &mut TcpStream,
) -> Result<(), Stop> {
    let (action, hold) =
        note_request(shared, conn, &raw[4..]).map_err(|_| Stop::Malformed)?;
    if let Some((delay, index)) = hold {
        // Everything behind it on this connection waits too.
        shared.nap(delay);
        if let Some(h) = lock(&shared.stats).held.get_mut(index) {
            h.forwarded_at_ms = Some(now_ms());
        }
        if conn.client_closed() {
            // It timed out and hung up meanwhile: the request goes on alone.
            conn.client_gone();
        }
    }
    if to.write_all(raw).is_err() {
        return Err(Stop::Close);
    }
    if action == Action::Cut {
        return Err(Stop::ClientGone);
    }
    Ok(())
}

/// Records a request before it is forwarded, so its response is recognised:
/// the fault for its response, and how long to hold it first (with its index
/// among the held requests), if a hold is armed for it.
fn note_request(
    shared: &Shared,
    conn: &Conn,
    payload: &[u8],
) -> std::result::Result<(Action, Option<(Duration, usize)>), FrameError> {
    let info = decode_request_header(payload)?;
    let hold = shared.take_hold(info.api_key).map(|delay| {
        let note = HeldRequest::arrived(
            info.api_key,
            info.api_version,
            info.correlation_id,
            &payload[info.header_len..],
        );
        let mut stats = lock(&shared.stats);
        stats.held.push(note);
        (delay, stats.held.len() - 1)
    });
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
                held: hold.map(|(_, index)| index),
            },
        );
    }
    if action == Action::Cut {
        shared.bump(|s| s.connections_cut += 1);
        // From now on nothing reaches the client, not even responses already
        // on their way: the connection is gone as far as it knows.
        state.client_gone_at.get_or_insert_with(Instant::now);
    }
    Ok((action, hold))
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
    from: TcpStream,
    mut to: TcpStream,
) {
    // Wake up now and then to notice a client that went away.
    let _ = from.set_read_timeout(Some(Duration::from_millis(250)));
    let mut from = Inbound::new(from);
    loop {
        match from.fill() {
            Fill::Read => {}
            Fill::Idle => {
                if shared.stopping() {
                    break;
                }
                let state = lock(&conn.state);
                if state.nothing_owed() || state.drain_over() {
                    break;
                }
                continue;
            }
            Fill::End => break,
        }
        let answered =
            from.each_frame(|raw| forward_response(shared, conn, raw, &mut to));
        if let Err(stop) = answered {
            return stop.apply(shared, conn);
        }
        if lock(&conn.state).nothing_owed() {
            break;
        }
    }
    conn.close_both();
}

/// One response frame (`raw`, length prefix included): matched to its
/// request, rewritten if it names brokers, then dropped, delayed or forwarded
/// as the request's fault says.
fn forward_response(
    shared: &Arc<Shared>,
    conn: &Conn,
    raw: &[u8],
    to: &mut TcpStream,
) -> Result<(), Stop> {
    let payload = &raw[4..];
    let correlation_id =
        response_correlation_id(payload).map_err(|_| Stop::Malformed)?;
    let (request, client_there) = {
        let mut state = lock(&conn.state);
        (
            state.pending.remove(&correlation_id),
            state.client_gone_at.is_none(),
        )
    };
    let request = request.ok_or(Stop::Malformed)?;
    if let Some(index) = request.held {
        shared.held_answered(index, payload, !client_there);
    }
    if !client_there {
        return Ok(()); // answered after the client left: nobody to tell
    }
    let rewritten = rewrite_for_client(shared, request, payload)?;
    let out: &[u8] = rewritten.as_deref().unwrap_or(raw);
    match request.action {
        Action::Drop => {
            shared.bump(|s| s.count_drop(request.api_key));
            return Ok(());
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
    Ok(())
}

/// The response frame with its broker addresses pointing at the proxy's
/// listeners; `None` if it names no broker, or only ones already there.
fn rewrite_for_client(
    shared: &Arc<Shared>,
    request: Pending,
    payload: &[u8],
) -> Result<Option<Vec<u8>>, Stop> {
    if !names_brokers(request.api_key) {
        return Ok(None);
    }
    let mut route = |host: &str, port: i32| shared.route_to(host, port);
    match rewrite_response(request.api_key, request.api_version, payload, &mut route) {
        Ok(r) => Ok(r.map(|p| encode_frame(&p))),
        Err(FrameError::Route(_)) => Err(Stop::Close),
        Err(_) => Err(Stop::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::proxy::testkit::{
        decode_response, request_frame, response_payload, str_bytes, FakeBroker,
    };
    use crate::faults::proxy::{ChaosProxy, RequestInfo};
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{
        ApiVersionsRequest, BrokerId, EndTxnRequest, MetadataRequest, MetadataResponse,
        ProduceRequest, TransactionalId,
    };

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

    /// Reads one response and checks that it answers `correlation_id`.
    #[track_caller]
    fn expect_answer(s: &mut TcpStream, correlation_id: i32) {
        let payload = read_response(s).expect("a response, not a closed connection");
        assert_eq!(payload[..4], correlation_id.to_be_bytes());
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

    fn metadata_frame(correlation_id: i32) -> Vec<u8> {
        request_frame(
            ApiKey::Metadata,
            12,
            correlation_id,
            &MetadataRequest::default(),
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
        expect_answer(&mut good, 2);
        let mut again = connect(&proxy);
        again.write_all(&api_versions_frame(3)).unwrap();
        expect_answer(&mut again, 3);

        // An undecodable header (unknown api key) is malformed too.
        let mut bad = connect(&proxy);
        bad.write_all(&encode_frame(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]))
            .unwrap();
        assert_eq!(read_response(&mut bad), None);
        eventually("the second malformed frame", || {
            proxy.stats().malformed_frames == 2
        });
        good.write_all(&api_versions_frame(4)).unwrap();
        expect_answer(&mut good, 4);
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
        expect_answer(&mut client, 2);
        expect_answer(&mut client, 3);
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
        expect_answer(&mut client, 4);
    }

    fn end_txn_frame(correlation_id: i32) -> Vec<u8> {
        let body = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_committed(true);
        request_frame(ApiKey::EndTxn, 1, correlation_id, &body)
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
        expect_answer(&mut client, 1);
        expect_answer(&mut client, 2);
        // The EndTxn reaches the broker; its answer never reaches the client.
        client.write_all(&end_txn_frame(3)).unwrap();
        client.write_all(&end_txn_frame(4)).unwrap();
        expect_answer(&mut client, 4);
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
        expect_answer(&mut client, 7);
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
        expect_answer(&mut client, 1);
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
        expect_answer(&mut client, 2);
        assert_eq!(proxy.stats().responses_delayed, 1);
        // Disarmed: the next one is quick.
        let started = Instant::now();
        client.write_all(&produce_frame(3, -1)).unwrap();
        expect_answer(&mut client, 3);
        assert!(started.elapsed() < delay);
    }

    #[test]
    fn a_held_request_reaches_the_broker_late_and_its_answer_is_noted() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        let delay = Duration::from_millis(400);
        proxy.inject_request_hold(ApiKey::Produce, 1, delay);
        // Another api passes at once; the Produce waits, and so does what follows it.
        client.write_all(&api_versions_frame(1)).unwrap();
        expect_answer(&mut client, 1);
        let started = Instant::now();
        client.write_all(&produce_frame(2, -1)).unwrap();
        client.write_all(&api_versions_frame(3)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(broker.requests().len(), 1, "the Produce is still held");
        expect_answer(&mut client, 2);
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
        expect_answer(&mut client, 3);
        assert_eq!(proxy.request_hold(), None, "used up and disarmed");
        let held = proxy.stats().held;
        assert_eq!(held.len(), 1, "{held:?}");
        let h = &held[0];
        assert_eq!((h.api.as_str(), h.correlation_id), ("Produce", 2));
        let (at, fwd) = (h.held_at_ms, h.forwarded_at_ms.unwrap());
        assert!(fwd >= at + 350, "held {} ms", fwd - at);
        assert!(h.answered_at_ms.unwrap() >= fwd && !h.client_gone);

        // The client hangs up while its request is held: the request still
        // reaches the broker, and only the proxy hears the answer.
        let mut client = connect(&proxy);
        proxy.inject_request_hold(ApiKey::Produce, 1, delay);
        client.write_all(&produce_frame(4, -1)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(client);
        eventually("the late answer", || {
            proxy
                .stats()
                .held
                .get(1)
                .is_some_and(|h| h.answered_at_ms.is_some())
        });
        assert!(proxy.stats().held[1].client_gone);
        assert_eq!(broker.requests().last().unwrap().correlation_id, 4);
    }

    #[test]
    fn a_cut_closes_the_client_after_the_request_reached_the_broker() {
        let broker = FakeBroker::simple();
        let proxy = ChaosProxy::start(&broker.addr.to_string()).unwrap();
        let mut client = connect(&proxy);
        client.write_all(&produce_frame(1, -1)).unwrap();
        expect_answer(&mut client, 1);
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
        expect_answer(&mut client, 3);
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
        expect_answer(&mut client, 2);
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
        client.write_all(&metadata_frame(9)).unwrap();
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
        expect_answer(&mut to_second, 77);
        assert_eq!(second.requests().len(), 1);
        // Asking again reuses the listeners.
        client.write_all(&metadata_frame(10)).unwrap();
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
}
