//! Server push: unsolicited frames to a connection, as Go's `Server.SendMessage` writes them
//! (docs/protocol.md 4.16): message type Request, oneway, not a heartbeat, serialize type 0
//! (`SerializeNone`), no compression, the caller's path, method, metadata and raw payload, and a seq
//! from a counter that starts at 1.
//!
//! A [`Pusher`] is a handle on one connection of the core it was made on: a service gets its own
//! connection's with [`Context::pusher`](crate::Context::pusher); any code on the core finds one
//! by peer address ([`connection_to`]) or lists them all ([`connections`]). A push is encoded into
//! the connection's push buffer and the writer is woken: the frame leaves with the next batch,
//! before the replies of that batch (so a push made by a handler precedes its reply, as in Go). A
//! handle whose connection has gone answers [`PushError::Closed`]; it never panics and never keeps
//! the connection alive (it holds a `Weak`).
//!
//! Everything here is core-local (`Rc`, thread-locals): a `Pusher` is neither `Send` nor `Sync`,
//! which is the thread-per-core contract; to push from another thread, send a message to a task
//! on the connection's core. Where Go counts push seqs server-wide, each core counts its own: seqs
//! still start at 1 and increase on every connection, with no atomic shared between cores.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Weak;

use bytes::BytesMut;
use ringrpc_codec::{encode_frame, Header, SerializeType};
use rustc_hash::FxHashMap;

/// Why a push was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closed (or closing): nothing more can be written to it.
    #[error("push: the connection is closed")]
    Closed,
    /// The peer does not read fast enough: `pending` bytes of pushes wait already.
    #[error("push: {pending} bytes of pushes are waiting for the peer already")]
    Backlog { pending: usize },
}

/// Where a connection takes pushes: implemented by the connection loop's shared state.
pub(crate) trait Outbox {
    /// Appends one frame (written by `write`) to the connection's output and wakes its writer.
    fn push_frame(&self, write: &mut dyn FnMut(&mut BytesMut)) -> Result<(), PushError>;
}

/// Stands in for a connection that is not there: every push is [`PushError::Closed`].
struct Gone;

impl Outbox for Gone {
    fn push_frame(&self, _: &mut dyn FnMut(&mut BytesMut)) -> Result<(), PushError> {
        Err(PushError::Closed)
    }
}

/// A live connection of this core.
struct Link {
    peer: SocketAddr,
    outbox: Weak<dyn Outbox>,
}

thread_local! {
    /// Live connections of this core, by connection id.
    static LINKS: RefCell<FxHashMap<u64, Link>> = RefCell::new(FxHashMap::default());
    /// The next connection id of this core (0 means "no connection").
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
    /// Seq of the next push made on this core (spec 4.16: starts at 1).
    static PUSH_SEQ: Cell<u64> = const { Cell::new(1) };
}

/// A handle that sends server pushes to one connection.
#[derive(Clone)]
pub struct Pusher {
    peer: Option<SocketAddr>,
    outbox: Weak<dyn Outbox>,
}

impl Pusher {
    fn gone() -> Self {
        let outbox: Weak<dyn Outbox> = Weak::<Gone>::new();
        Pusher { peer: None, outbox }
    }

    /// The connection's peer (`None` for the handle of a context that has no connection).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Whether the connection still exists (it may close before the next push anyway).
    pub fn is_open(&self) -> bool {
        self.outbox.strong_count() > 0
    }

    /// Sends `payload` to the connection as a push to `path.method` with `metadata` (Go's
    /// `SendMessage`); it leaves with the connection's next write.
    pub fn send(
        &self,
        path: &str,
        method: &str,
        metadata: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), PushError> {
        let outbox = self.outbox.upgrade().ok_or(PushError::Closed)?;
        outbox.push_frame(&mut |buf| {
            let seq = PUSH_SEQ.with(|next| next.replace(next.get().wrapping_add(1)));
            let mut header = Header::new();
            header
                .set_oneway(true)
                .set_serialize_type(SerializeType::Raw)
                .set_seq(seq);
            encode_frame(
                buf,
                &header,
                path.as_bytes(),
                method.as_bytes(),
                metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
                payload,
            );
        })
    }
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("peer", &self.peer)
            .field("open", &self.is_open())
            .finish()
    }
}

/// The connection of this core whose peer is `peer`, if it is open and has sent its first byte
/// (a connection that has sent nothing holds nothing, not even its place here).
pub fn connection_to(peer: SocketAddr) -> Option<Pusher> {
    LINKS.with(|links| {
        links
            .borrow()
            .values()
            .find(|link| link.peer == peer)
            .map(|link| Pusher {
                peer: Some(link.peer),
                outbox: link.outbox.clone(),
            })
    })
}

/// Every open connection of this core (e.g. to broadcast), in no particular order.
pub fn connections() -> Vec<Pusher> {
    LINKS.with(|links| {
        links
            .borrow()
            .values()
            .map(|link| Pusher {
                peer: Some(link.peer),
                outbox: link.outbox.clone(),
            })
            .collect()
    })
}

/// A connection's entry in its core's registry; dropping it removes the entry.
pub(crate) struct Registration {
    id: u64,
}

impl Registration {
    /// Registers a connection of this core.
    pub(crate) fn new(peer: SocketAddr, outbox: Weak<dyn Outbox>) -> Self {
        let id = NEXT_ID.with(|next| next.replace(next.get() + 1));
        LINKS.with(|links| links.borrow_mut().insert(id, Link { peer, outbox }));
        Registration { id }
    }

    /// The connection's id: its contexts' pushes go to it ([`pusher_of`]).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        LINKS.with(|links| links.borrow_mut().remove(&self.id));
    }
}

/// The handle of connection `id` of this core; a closed one if it is gone.
pub(crate) fn pusher_of(id: u64) -> Pusher {
    LINKS.with(|links| {
        links
            .borrow()
            .get(&id)
            .map_or_else(Pusher::gone, |link| Pusher {
                peer: Some(link.peer),
                outbox: link.outbox.clone(),
            })
    })
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use ringrpc_codec::{Decoder, Limits};

    use super::*;

    /// An outbox that keeps what is pushed.
    #[derive(Default)]
    struct Buffer(RefCell<BytesMut>);

    impl Outbox for Buffer {
        fn push_frame(&self, write: &mut dyn FnMut(&mut BytesMut)) -> Result<(), PushError> {
            write(&mut self.0.borrow_mut());
            Ok(())
        }
    }

    #[test]
    fn a_push_is_a_oneway_raw_request_with_increasing_seqs() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let buffer = Rc::new(Buffer::default());
        let outbox: Rc<dyn Outbox> = buffer.clone();
        let registration = Registration::new(peer, Rc::downgrade(&outbox));
        let pusher = connection_to(peer).expect("registered");
        pusher.send("Push", "Notify", &[], b"hello").unwrap();
        pusher
            .send("Push", "Notify", &[("k", "v")], b"again")
            .unwrap();

        let mut bytes = buffer.0.borrow().clone();
        let decoder = Decoder::new(Limits::default());
        let first = decoder.decode(&mut bytes).unwrap().unwrap();
        let second = decoder.decode(&mut bytes).unwrap().unwrap();
        for m in [&first, &second] {
            assert!(!m.header().is_response() && m.is_oneway() && !m.is_heartbeat());
            assert_eq!(m.serialize_type(), SerializeType::Raw);
            assert_eq!(m.service_path(), b"Push");
        }
        assert_eq!(first.payload(), b"hello");
        assert_eq!(second.metadata().get_str("k"), Some("v"));
        assert_eq!(second.seq(), first.seq() + 1);

        drop(registration);
        assert!(connection_to(peer).is_none());
    }

    #[test]
    fn a_handle_whose_connection_is_gone_says_closed() {
        let peer: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let outbox: Rc<dyn Outbox> = Rc::new(Buffer::default());
        let registration = Registration::new(peer, Rc::downgrade(&outbox));
        let pusher = connection_to(peer).unwrap();
        drop(outbox);
        drop(registration);
        assert!(!pusher.is_open());
        assert_eq!(
            pusher.send("Push", "Notify", &[], b"x"),
            Err(PushError::Closed)
        );
        assert_eq!(
            pusher_of(u64::MAX).send("P", "M", &[], b""),
            Err(PushError::Closed)
        );
    }
}
