//! The service layer: what a request is routed to and how its reply is made (Go's `RegisterName`,
//! `suitableMethods` and `handleRequest`; docs/protocol.md 4.2, 4.6, 4.7, 4.12, 4.14, 4.15).
//! It knows frames (it writes replies) but not sockets.
//!
//! - [`error`]: [`ServiceError`] (a method's failure) and [`RegistrationError`].
//! - [`payload`]: the [`Payload`] trait and the `serde_payload!` / `proto_payload!` macros.
//! - [`method`]: [`Service`], built with closures or by `#[service]`; how a method is called.
//! - [`reply`]: a call's result → its reply frame, through the codec's one reply writer.
//! - [`raw`]: raw handlers and [`RawReply`].
//! - [`names`]: the small-table name lookup.
//! - [`table`]: [`ServiceTable`], its builder and [`Dispatch`].

pub mod error;
pub mod method;
mod names;
pub mod payload;
pub mod raw;
pub(crate) mod reply;
pub mod table;

pub use error::{RegistrationError, ServiceError};
pub(crate) use method::panic_text;
pub use method::{IntoService, LocalFuture, Service};
pub use payload::Payload;
pub use raw::RawReply;
pub use table::{Dispatch, ServiceTable, ServiceTableBuilder};
