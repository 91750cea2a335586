//! One parked task, woken when the state it waits on changes: the only synchronisation a
//! connection's reader, writer and handlers need, since they all run on one thread.

use std::cell::Cell;
use std::task::{Poll, Waker};

/// Holds the waker of at most one waiting task.
#[derive(Default)]
pub struct WakerSlot(Cell<Option<Waker>>);

impl WakerSlot {
    /// Wakes the parked task, if any.
    pub fn wake(&self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
    }

    /// Completes once `ready()` holds, checked now and each time the slot is woken.
    pub async fn wait_until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                Poll::Ready(())
            } else {
                self.0.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
