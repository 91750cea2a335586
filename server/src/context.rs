//! What a handler knows about its request: metadata, seq, peer, deadline, and the response
//! metadata it may set (docs/protocol.md 4.2 steps 6–7, 4.9).
//!
//! A [`Context`] owns the decoded request (a few `Bytes` handles on the receive buffer), so it can
//! move into an async handler. It allocates nothing unless the handler sets response metadata.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringrpc_codec::{Message, Metadata, MetadataBuilder, SERVER_TIMEOUT_KEY};

/// The request as a handler sees it.
pub struct Context {
    request: Message,
    peer: SocketAddr,
    deadline: Option<Instant>,
    /// Created on first use: most handlers set none, and then there is nothing to drop. Boxed so
    /// that an unset one is a null pointer: dropping it is one inline check.
    response_metadata: RefCell<Option<Box<MetadataBuilder>>>,
}

impl Context {
    /// Wraps a decoded request. `__ServerTimeout` (milliseconds) becomes the deadline when it
    /// parses as an integer; otherwise it is ignored, as in Go.
    #[inline(always)]
    pub fn new(request: Message, peer: SocketAddr) -> Self {
        let metadata = request.metadata();
        let deadline = if metadata.is_empty() {
            None
        } else {
            metadata
                .get_str(SERVER_TIMEOUT_KEY)
                .and_then(|ms| ms.trim().parse::<i64>().ok())
                .map(|ms| Instant::now() + Duration::from_millis(ms.max(0) as u64))
        };
        Context {
            request,
            peer,
            deadline,
            response_metadata: RefCell::new(None),
        }
    }

    /// The whole decoded request.
    #[inline]
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// The request metadata (never echoed unless the handler copies it).
    #[inline]
    pub fn metadata(&self) -> Metadata<'_> {
        self.request.metadata()
    }

    pub fn seq(&self) -> u64 {
        self.request.seq()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// When the client stops waiting, from `__ServerTimeout`. Not enforced by the server (spec 4.9):
    /// a reply after it is simply dropped by the client.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Adds a key to the response metadata.
    pub fn set_response_metadata(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.response_metadata
            .borrow_mut()
            .get_or_insert_with(Default::default)
            .insert(key, value);
    }

    /// The response metadata set so far (`None`: none set).
    #[inline]
    pub(crate) fn response_metadata(&self) -> std::cell::Ref<'_, Option<Box<MetadataBuilder>>> {
        self.response_metadata.borrow()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("request", &self.request)
            .field("peer", &self.peer)
            .field("deadline", &self.deadline)
            .finish()
    }
}
