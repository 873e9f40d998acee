use thiserror::Error;

/// What a client call can fail with.
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// The broker answered with an error status (its code says what to do:
    /// NOT_FOUND, INVALID_ARGUMENT, OUT_OF_RANGE, ...).
    #[error("broker error {code:?}: {message}")]
    Status {
        /// gRPC status code.
        code: tonic::Code,
        /// The broker's message, naming what was wrong.
        message: String,
    },
    /// The broker could not be reached.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The address tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The broker sent something this client cannot read.
    #[error("malformed response: {0}")]
    Protocol(String),
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl Error {
    /// The gRPC code, for errors the broker sent.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result type of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
