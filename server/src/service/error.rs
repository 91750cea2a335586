//! The two errors of the service layer: a method's failure, whose text the client reads, and a
//! table that cannot be built.

use std::borrow::Cow;

/// The error a method returns; its text goes verbatim into `__rpcx_error__` (Go's `err.Error()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError(Cow<'static, str>);

impl ServiceError {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        ServiceError(text.into())
    }

    /// The text the client reads.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceError {}

impl From<&'static str> for ServiceError {
    fn from(text: &'static str) -> Self {
        ServiceError(Cow::Borrowed(text))
    }
}

impl From<String> for ServiceError {
    fn from(text: String) -> Self {
        ServiceError(Cow::Owned(text))
    }
}

/// Why a table could not be built (Go's registration errors, docs/protocol.md 4.15).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    #[error("rpcx.Register: no service name")]
    EmptyServiceName,
    #[error("rpcx.Register: service {0} has no methods")]
    NoMethods(String),
    #[error("rpcx.Register: service {service}: empty method name")]
    EmptyMethodName { service: String },
    #[error("rpcx.Register: service already defined: {0}")]
    DuplicateService(String),
    #[error("rpcx.Register: service {service}: method {method} registered twice")]
    DuplicateMethod { service: String, method: String },
    #[error("rpcx.AddHandler: handler {0} registered twice")]
    DuplicateRawHandler(String),
}
