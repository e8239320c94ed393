//! Is any broker answering? Every wait of the lab on Kafka (an admin
//! request, a producer's queue or flush, a transaction's commit, a consumer's
//! or a reader's poll loop) keeps a [`BrokerWatch`]: it notes when it last
//! heard from a broker, and once it has heard nothing for [`QUIET`] it asks
//! whether any broker at the bootstrap address answers at all. When none has
//! answered for [`NO_ANSWER_LIMIT`], the wait fails with one error,
//! [`Error::NoBroker`], that names the address and says how to start a broker,
//! instead of sitting out librdkafka's own timeouts (a minute for an admin
//! request, five for an at-least-once record) with nothing on the screen.
//!
//! The question is a metadata request from a fresh client with a short
//! timeout ([`answers`]), the same question [`Cluster::connect`] asks. Why
//! not librdkafka's error callback (`AllBrokersDown`, `_TRANSPORT`)? It fires
//! once per lost connection, only on clients whose context the lab wrote (not
//! the admin client's), and never says when a broker is back; and "every
//! connection is down" is not "nothing answers": librdkafka reports it while
//! a reconnect is a moment away. A fresh client has no reconnect backoff from
//! earlier failures, so a broker that came back is seen at once. It costs one
//! round trip on a live broker, asked only after seconds without news.
//!
//! [`Cluster::connect`]: crate::cluster::Cluster::connect

use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};

use crate::error::{Error, Result};
use crate::support::lock;

/// How long a wait goes on with no broker answering before it fails.
pub const NO_ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// How long a wait hears nothing before it starts asking whether any broker
/// answers (a healthy broker answers a busy client many times a second).
pub const QUIET: Duration = Duration::from_secs(3);

/// The timeout of one question to the brokers.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a blocking call may block between two looks at the watch.
pub const SLICE: Duration = Duration::from_secs(3);

/// The pause between two questions that got no answer.
const PROBE_GAP: Duration = Duration::from_secs(1);

/// Asks the brokers at `bootstrap` for cluster metadata from a fresh client,
/// waiting up to `timeout`; the number of brokers named, or why none answered.
pub fn answers(
    bootstrap: &str,
    timeout: Duration,
) -> std::result::Result<usize, String> {
    answers_with(
        bootstrap,
        timeout,
        &crate::connection::settings().unwrap_or_default(),
    )
}

/// [`answers`] with these client settings instead of the client-settings
/// file's (e.g. a password, for a broker that asks for one).
pub fn answers_with(
    bootstrap: &str,
    timeout: Duration,
    settings: &[(String, String)],
) -> std::result::Result<usize, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in settings {
        config.set(k, v);
    }
    let consumer: BaseConsumer<LastError> = config
        .create_with_context(LastError::default())
        .map_err(|e| e.to_string())?;
    let metadata = consumer.fetch_metadata(None, timeout).map_err(|e| {
        // librdkafka reports a refused login only as an error event; the
        // request itself just times out. A poll serves the event.
        let _ = consumer.poll(Duration::from_millis(100));
        match lock(&consumer.context().0).take() {
            Some(why) if why.contains("uthentication") => why,
            _ => e.to_string(),
        }
    })?;
    match metadata.brokers().len() {
        0 => Err("the metadata named no brokers".into()),
        n => Ok(n),
    }
}

/// Keeps the last error librdkafka reported outside any request.
#[derive(Default)]
struct LastError(Mutex<Option<String>>);

impl rdkafka::ClientContext for LastError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        *lock(&self.0) = Some(format!("{error}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for LastError {}

/// What a [`BrokerWatch`] calls with a line while no broker answers.
type SilenceHook = Arc<dyn Fn(&str) + Send + Sync>;

static ON_SILENCE: Mutex<Option<SilenceHook>> = Mutex::new(None);

/// Where the lines a wait writes while no broker answers go (e.g. above a
/// progress bar). Without a hook they go to stderr, which a notebook shows
/// under the cell.
pub fn on_silence(hook: impl Fn(&str) + Send + Sync + 'static) {
    *lock(&ON_SILENCE) = Some(Arc::new(hook));
}

fn say(line: &str) {
    let hook = lock(&ON_SILENCE).clone();
    match hook {
        Some(hook) => hook(line),
        None => eprintln!("{line}"),
    }
}

/// One wait's watch on the brokers: see the module's docs.
#[derive(Debug)]
pub struct BrokerWatch {
    bootstrap: String,
    doing: String,
    /// What the client does meanwhile by design, e.g. that it keeps retrying.
    meanwhile: Option<String>,
    limit: Duration,
    last_heard: Instant,
    next_probe: Instant,
    /// Why the last question got no answer; None if it got one.
    unanswered: Option<String>,
}

impl BrokerWatch {
    /// A watch on the brokers at `bootstrap` during `doing` ("producing to
    /// t"), starting now as if it had just heard from one.
    pub fn new(bootstrap: &str, doing: impl Into<String>) -> BrokerWatch {
        let now = Instant::now();
        BrokerWatch {
            bootstrap: bootstrap.to_string(),
            doing: doing.into(),
            meanwhile: None,
            limit: NO_ANSWER_LIMIT,
            last_heard: now,
            next_probe: now,
            unanswered: None,
        }
    }

    /// A watch on the brokers `client` was configured with.
    pub fn of_client<C: ClientContext>(
        client: &Client<C>,
        doing: impl Into<String>,
    ) -> BrokerWatch {
        BrokerWatch::new(&bootstrap_of(client), doing)
    }

    /// Says, in the lines written while no broker answers, what the client
    /// does meanwhile (e.g. "at-least-once keeps retrying every record").
    pub fn meanwhile(mut self, what: impl Into<String>) -> BrokerWatch {
        self.meanwhile = Some(what.into());
        self
    }

    /// Gives up after `limit` without an answer instead of [`NO_ANSWER_LIMIT`]
    /// (a parent watching a child that keeps its own watch waits longer).
    pub fn with_limit(mut self, limit: Duration) -> BrokerWatch {
        self.limit = limit;
        self
    }

    /// A broker answered (a record acknowledged or consumed, a call returned).
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.unanswered = None;
    }

    /// Called while waiting: after [`QUIET`] without news, asks whether any
    /// broker answers (blocking up to [`PROBE_TIMEOUT`]); fails with
    /// [`Error::NoBroker`] once none has answered for the limit.
    pub fn check(&mut self) -> Result<()> {
        if self.last_heard.elapsed() < QUIET {
            return Ok(());
        }
        if Instant::now() >= self.next_probe {
            match answers(&self.bootstrap, PROBE_TIMEOUT) {
                Ok(_) => {
                    // Someone answers: the wait is about something else, and
                    // its own limit applies.
                    self.heard();
                    return Ok(());
                }
                Err(cause) => {
                    self.unanswered = Some(cause);
                    self.next_probe = Instant::now() + PROBE_GAP;
                    if self.last_heard.elapsed() < self.limit {
                        say(&self.waiting_line());
                    }
                }
            }
        }
        if self.unanswered.is_some() && self.last_heard.elapsed() >= self.limit {
            return Err(self.no_broker());
        }
        Ok(())
    }

    /// After a call failed with `error`: [`Error::NoBroker`] if no broker
    /// answers now and none has for the limit, else `error` as it was.
    pub fn explain(&mut self, error: Error) -> Error {
        self.next_probe = Instant::now();
        match self.check() {
            Err(no_broker) => no_broker,
            Ok(()) => error,
        }
    }

    /// The error of a wait that heard from no broker for the limit.
    pub fn no_broker(&self) -> Error {
        Error::NoBroker {
            bootstrap: self.bootstrap.clone(),
            waited: self.last_heard.elapsed(),
            doing: self.doing.clone(),
            cause: self
                .unanswered
                .clone()
                .unwrap_or_else(|| "no answer".into()),
        }
    }

    fn waiting_line(&self) -> String {
        format!(
            "waiting: no Kafka broker has answered at {} for {} s while {}{}; giving up at {} s",
            self.bootstrap,
            self.last_heard.elapsed().as_secs(),
            self.doing,
            self.meanwhile
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            self.limit.as_secs()
        )
    }

    /// Runs a blocking call `op` in slices of at most [`SLICE`] (its
    /// argument is the slice's timeout), again while it fails for want of an
    /// answer (a timeout, a lost connection, a retriable transaction error),
    /// looking at the watch between slices. Fails with the call's own error,
    /// named by `doing`, if it fails otherwise or is still failing after
    /// `limit`; with [`Error::NoBroker`] once no broker answers.
    pub fn patiently<T>(
        &mut self,
        doing: &str,
        limit: Duration,
        mut op: impl FnMut(Duration) -> KafkaResult<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match op(left.min(SLICE).max(Duration::from_millis(1))) {
                Ok(value) => {
                    self.heard();
                    return Ok(value);
                }
                Err(source) if unanswered(&source) && !left.is_zero() => {
                    self.check()?;
                }
                Err(source) => {
                    let error = Error::Kafka {
                        doing: doing.to_string(),
                        source,
                    };
                    return Err(self.explain(error));
                }
            }
        }
    }

    /// Runs `call` (a blocking request: an admin request, a commit) on a
    /// thread of its own, looking at the watch every 100 ms meanwhile. A call
    /// given up on ends by itself, at its own timeout.
    pub fn wait_on_thread<T: Send + 'static>(
        &mut self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lab-blocking-call".into())
            .spawn(move || {
                let _ = tx.send(call());
            })
            .map_err(|source| Error::Io {
                doing: "starting a thread to wait for a blocking request".into(),
                source,
            })?;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(value) => {
                    self.heard();
                    return Ok(value);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self.check()?,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Process {
                        what: format!("a request ({})", self.doing),
                        detail: "its thread ended without an answer".into(),
                    })
                }
            }
        }
    }
}

/// Errors that mean "no answer (yet)": a timeout, a connection lost or
/// refused, every broker down, or a transaction call librdkafka says may be
/// made again.
pub fn unanswered(error: &KafkaError) -> bool {
    if let KafkaError::Transaction(e) = error {
        return e.is_retriable();
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

/// The `bootstrap.servers` a client was created with.
fn bootstrap_of<C: ClientContext>(client: &Client<C>) -> String {
    let name = CString::new("bootstrap.servers").expect("no NUL in a constant");
    let mut buf = vec![0u8; 1024];
    let mut size = buf.len();
    // SAFETY: the client is alive for the whole call, so its handle and its
    // configuration (owned by the handle) are valid; rd_kafka_conf_get writes
    // at most `size` bytes into `buf` and sets `size` to the value's length
    // including its NUL.
    let ok = unsafe {
        let conf = rdkafka::bindings::rd_kafka_conf(client.native_ptr());
        rdkafka::bindings::rd_kafka_conf_get(
            conf,
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut size,
        ) == rdkafka::bindings::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK
    };
    if !ok {
        return "the configured bootstrap servers".into();
    }
    buf.truncate(size.saturating_sub(1).min(buf.len()));
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// An address where nothing listens (a port just freed).
    fn closed_address() -> String {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[test]
    fn a_watch_names_the_address_a_client_was_given() {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1,127.0.0.1:2")
            .create()
            .unwrap();
        let watch = BrokerWatch::of_client(consumer.client(), "testing");
        assert_eq!(watch.bootstrap, "127.0.0.1:1,127.0.0.1:2");
    }

    #[test]
    fn a_silent_address_fails_the_wait_within_the_limit_naming_it() {
        let address = closed_address();
        let mut watch = BrokerWatch::new(&address, "testing")
            .meanwhile("the test keeps asking")
            .with_limit(Duration::from_secs(4));
        let started = Instant::now();
        let err = loop {
            if let Err(e) = watch.check() {
                break e;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = started.elapsed();
        assert!(matches!(err, Error::NoBroker { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&address), "{text}");
        assert!(text.contains("while testing"), "{text}");
        assert!(text.contains("cargo xtask kafka up"), "{text}");
        // Quiet for 3 s, then questions of up to 2 s each.
        assert!(took >= Duration::from_secs(4), "{took:?}");
        assert!(took < Duration::from_secs(8), "{took:?}");
    }

    #[test]
    fn news_keeps_a_watch_quiet_and_asks_nothing() {
        let mut watch = BrokerWatch::new(&closed_address(), "testing");
        for _ in 0..5 {
            watch.heard();
            let started = Instant::now();
            watch.check().unwrap();
            assert!(started.elapsed() < Duration::from_millis(100));
        }
    }

    #[test]
    fn only_errors_without_an_answer_are_waited_out() {
        assert!(unanswered(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(unanswered(&KafkaError::Flush(
            RDKafkaErrorCode::OperationTimedOut
        )));
        assert!(!unanswered(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
    }
}
