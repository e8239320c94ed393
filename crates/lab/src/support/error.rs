//! One error type for the lab, whose messages say what to do next.

use std::time::Duration;

/// Everything that can go wrong in a lab run, worded for a learner.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No broker answered at the bootstrap address for `waited`, while the
    /// lab was `doing` something (connecting, producing, reading back).
    #[error(
        "no Kafka broker answers at {bootstrap} (for {} s, while {doing}; last attempt: {cause}).\n\
         Start one with `cargo xtask kafka up` (or `docker compose up -d --wait`),\n\
         or set KAFKA_BOOTSTRAP_SERVERS (or `--bootstrap`) to the address of a running broker.",
        .waited.as_secs()
    )]
    NoBroker {
        bootstrap: String,
        waited: Duration,
        doing: String,
        cause: String,
    },

    /// The broker answered but refused the user name and password of the
    /// client-settings file.
    #[error(
        "authentication failed for user {user} at {bootstrap}: {cause}.\n\
         Check sasl.username, sasl.password and sasl.mechanism in the client-settings file \
         (KAFKA_CLIENT_CONFIG, or --client-config)."
    )]
    AuthenticationFailed {
        user: String,
        bootstrap: String,
        cause: String,
    },

    /// A broker answers at the address (its ApiVersions answer came back) but
    /// no request of this client got through: a listener that wants a
    /// password, most likely.
    #[error(
        "a Kafka broker answers at {bootstrap}, but does not let this client in ({cause}).\n\
         If it needs a password or TLS, put security.protocol, sasl.* and ssl.* in a \
         client-settings file and name it with KAFKA_CLIENT_CONFIG (or --client-config)."
    )]
    NotLetIn { bootstrap: String, cause: String },

    /// A combination of client settings that Kafka or librdkafka rejects, or that
    /// would silently break the guarantee the run is meant to show.
    #[error("bad configuration: {0}")]
    BadConfig(String),

    /// A file or a socket could not be read or written.
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },

    /// What the lab read is not what it expects (a recorded JSON file of
    /// another shape, a statistics report that is not one).
    #[error("{0}")]
    BadData(String),

    /// A process or thread the lab runs failed: a crash scenario's worker
    /// (other than by the SIGKILL the scenario sends), a broker it restarts,
    /// a JVM tool, a reader thread.
    #[error("{what} failed: {detail}")]
    Process { what: String, detail: String },

    /// The backend cannot show this semantic or scenario faithfully.
    #[error("{what} is refused on {backend}: {why}")]
    Unsupported {
        what: String,
        backend: String,
        why: String,
    },

    /// A stage did not finish in time (e.g. a consumer never got its partitions).
    #[error("{stage} did not finish within {waited:?}: {detail}")]
    Stalled {
        stage: &'static str,
        waited: Duration,
        detail: String,
    },

    /// A database the lab writes results to could not be opened, read or
    /// written: the file, what the lab was doing, SQLite's reason, and what
    /// to do about it.
    #[error("{doing} in the database {}: {cause}\n{hint}", .file.display())]
    Database {
        file: std::path::PathBuf,
        doing: String,
        cause: String,
        hint: &'static str,
    },

    /// An error reported by librdkafka, with what the lab was doing at the time.
    #[error("{doing}: {source}")]
    Kafka {
        doing: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what the lab was doing to a librdkafka or I/O error.
pub(crate) trait Doing<T> {
    fn doing(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Doing<T> for std::result::Result<T, rdkafka::error::KafkaError> {
    fn doing(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Kafka {
            doing: what.into(),
            source,
        })
    }
}

impl<T> Doing<T> for std::io::Result<T> {
    fn doing(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Io {
            doing: what.into(),
            source,
        })
    }
}
