//! What a handler knows about its request: metadata, seq, peer, deadline, its connection (for
//! server push), and the response metadata it may set (docs/protocol.md 4.2 steps 6–7, 4.9, 4.16).
//!
//! A [`Context`] owns the decoded request (a `Bytes` handle on the receive buffer). A connection
//! keeps one for its life and parses each request into it, in place; an async handler, which
//! outlives the run of frames, gets a context of its own ([`Context::detach`]). It allocates
//! nothing unless the handler sets response metadata.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringrpc_codec::{Message, Metadata, MetadataBuilder, SERVER_TIMEOUT_KEY};

use crate::push::{self, Pusher};

/// The error text of a request whose enforced deadline passed: Go's `context.DeadlineExceeded`,
/// which is what a Go service that honours its context returns.
pub const DEADLINE_EXCEEDED: &str = "context deadline exceeded";

/// The request as a handler sees it.
pub struct Context {
    request: Message,
    peer: SocketAddr,
    deadline: Option<Instant>,
    /// Whether the server answers with [`DEADLINE_EXCEEDED`] once the deadline passes (an option
    /// of the table, off by default as in Go).
    deadline_enforced: bool,
    /// The connection the request came on (its core's id; 0: none), for [`Context::pusher`].
    connection: u64,
    /// When an interceptor started timing the request ([`crate::clock::now_ns`]; 0: not timed).
    started: Cell<u64>,
    /// Created on first use: most handlers set none, and then there is nothing to drop. Boxed so
    /// that an unset one is a null pointer, and dropped by hand ([`Context`]'s `Drop`) so that
    /// dropping an unset one is one inline check: the compiler's drop glue for it was an
    /// outlined call costing 17 instructions per request (callgrind).
    response_metadata: ManuallyDrop<RefCell<Option<Box<MetadataBuilder>>>>,
    /// Whether `response_metadata` is set: one load for the reply to tell, where borrowing the
    /// cell to look cost 8 instructions per request (callgrind).
    has_response_metadata: Cell<bool>,
}

impl Drop for Context {
    #[inline(always)]
    fn drop(&mut self) {
        if self.response_metadata.get_mut().is_some() {
            // SAFETY: dropped once, here, and never used after: `self` is being dropped.
            unsafe { ManuallyDrop::drop(&mut self.response_metadata) }
        }
    }
}

impl Context {
    /// Wraps a decoded request. `__ServerTimeout` (milliseconds) becomes the deadline when it
    /// parses as an integer; otherwise it is ignored, as in Go. It belongs to no connection: its
    /// [`Context::pusher`]'s pushes fail with `Closed`.
    #[inline(always)]
    pub fn new(request: Message, peer: SocketAddr) -> Self {
        let deadline = deadline_of(&request);
        Context {
            request,
            peer,
            deadline,
            deadline_enforced: false,
            connection: 0,
            started: Cell::new(0),
            response_metadata: ManuallyDrop::new(RefCell::new(None)),
            has_response_metadata: Cell::new(false),
        }
    }

    /// The context of a connection's requests, one after the other: each is parsed into
    /// [`Context::request_slot`], then [`Context::begin_request`] and, after its reply,
    /// [`Context::end_request`]. Built once per connection, where it stays: a context built per
    /// request, and the request moved into it, cost about 40 instructions per request
    /// (callgrind). Holds an empty request until the first.
    /// `connection`: the id of the connection its pushes go to (0: none).
    pub(crate) fn for_connection(peer: SocketAddr, connection: u64) -> Self {
        let mut ctx = Context::new(Message::empty(), peer);
        ctx.connection = connection;
        ctx
    }

    /// Where the next request is parsed ([`Message::parse_into`]), and cleared after its frames
    /// (`FrameReader::release`: a frame lent to it is let go).
    #[inline(always)]
    pub(crate) fn request_slot(&mut self) -> &mut Message {
        &mut self.request
    }

    /// A new request was parsed into the slot: its deadline, and no timing yet.
    #[inline(always)]
    pub(crate) fn begin_request(&mut self) {
        self.deadline = deadline_of(&self.request);
        self.started.set(0);
    }

    /// The request in the slot is answered (or handed on, [`Context::detach`]): the response
    /// metadata it set goes.
    #[inline(always)]
    pub(crate) fn end_request(&mut self) {
        if self.has_response_metadata.replace(false) {
            *self.response_metadata.get_mut() = None;
        }
    }

    /// An owned context for the request in the slot, for a handler that outlives the run of
    /// frames (an async method): the request shared, not copied (a lent one is given its handle
    /// first, [`crate::service::ServiceTable`]'s dispatch; else it is copied).
    pub(crate) fn detach(&self) -> Context {
        Context {
            request: self.request.clone(),
            peer: self.peer,
            deadline: self.deadline,
            deadline_enforced: self.deadline_enforced,
            connection: self.connection,
            started: self.started.clone(),
            // Set by an interceptor's `before_call`, if any: it goes with the request.
            response_metadata: ManuallyDrop::new(RefCell::new(self.response_metadata.take())),
            has_response_metadata: Cell::new(self.has_response_metadata.replace(false)),
        }
    }

    /// Makes the deadline binding: see [`crate::ServiceTableBuilder::enforce_deadlines`].
    #[inline]
    pub(crate) fn enforce_deadline(&mut self) {
        self.deadline_enforced = true;
    }

    /// The deadline, if it is enforced for this request.
    #[inline]
    pub(crate) fn enforced_deadline(&self) -> Option<Instant> {
        if self.deadline_enforced {
            self.deadline
        } else {
            None
        }
    }

    /// Whether the deadline is enforced and has passed: the reply is then dropped for
    /// [`DEADLINE_EXCEEDED`].
    #[inline]
    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline_enforced && self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A handle to push frames to this request's connection (Go's `SendMessage` on the context's
    /// connection, spec 4.16). If the connection is gone, its pushes fail with
    /// [`PushError::Closed`](crate::push::PushError::Closed).
    pub fn pusher(&self) -> Pusher {
        push::pusher_of(self.connection)
    }

    /// Records when timing of this request started, a [`crate::clock::now_ns`] reading (used by
    /// interceptors, e.g. metrics).
    #[inline]
    pub fn set_started(&self, clock_ns: u64) {
        self.started.set(clock_ns);
    }

    /// When timing of this request started ([`crate::clock::now_ns`]), if an interceptor recorded
    /// it.
    #[inline]
    pub fn started(&self) -> Option<u64> {
        Some(self.started.get()).filter(|&ns| ns != 0)
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

    /// When the client stops waiting, from `__ServerTimeout` (0 or negative: already passed). Not
    /// enforced by default, as in Go (spec 4.9): a reply after it is simply dropped by the client;
    /// with [`enforce_deadlines`](crate::ServiceTableBuilder::enforce_deadlines) the server answers
    /// [`DEADLINE_EXCEEDED`] instead and cancels an async handler.
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
        self.has_response_metadata.set(true);
    }

    /// Whether response metadata was set.
    #[inline(always)]
    pub(crate) fn has_response_metadata(&self) -> bool {
        self.has_response_metadata.get()
    }

    /// The response metadata set so far (`None`: none set).
    #[inline]
    pub(crate) fn response_metadata(&self) -> std::cell::Ref<'_, Option<Box<MetadataBuilder>>> {
        self.response_metadata.borrow()
    }
}

/// The deadline `request`'s `__ServerTimeout` (milliseconds) sets, if it parses as an integer;
/// otherwise none, as in Go.
#[inline(always)]
fn deadline_of(request: &Message) -> Option<Instant> {
    if !request.has_metadata() {
        return None;
    }
    request
        .metadata()
        .get_str(SERVER_TIMEOUT_KEY)
        .and_then(|ms| ms.trim().parse::<i64>().ok())
        .map(|ms| Instant::now() + Duration::from_millis(ms.max(0) as u64))
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
