//! Wake-ups between the tasks of one thread: [`Event`].
//!
//! Every task of a load thread runs on the same monoio runtime, so these use `Cell`s, not atomics,
//! and are neither `Send` nor `Sync`. Nothing here allocates once a waiter's waker is stored.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A level-triggered notification: [`Event::notify`] wakes every task waiting in
/// [`Event::wait`], or lets the next `wait` return at once. Each wait consumes the notification.
#[derive(Default)]
pub struct Event {
    notified: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the event and wakes its waiters.
    pub fn notify(&self) {
        self.notified.set(true);
        // Waking only queues the task: no waiter runs (or re-borrows) before this returns.
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until the event is notified, then clears it.
    pub fn wait(&self) -> Wait<'_> {
        Wait { event: self }
    }
}

/// Future of [`Event::wait`].
pub struct Wait<'a> {
    event: &'a Event,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let event = self.event;
        if event.notified.replace(false) {
            return Poll::Ready(());
        }
        let mut waiters = event.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_notification_before_wait_is_kept() {
        monoio::start::<monoio::LegacyDriver, _>(async {
            let event = Event::new();
            event.notify();
            event.wait().await;
            assert!(!event.notified.get());
        });
    }

    #[test]
    fn notify_wakes_every_waiter() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let event = Rc::new(Event::new());
            let woken = Rc::new(Cell::new(0));
            let mut handles = Vec::new();
            for _ in 0..2 {
                let (event, woken) = (event.clone(), woken.clone());
                handles.push(monoio::spawn(async move {
                    event.wait().await;
                    woken.set(woken.get() + 1);
                    // The second waiter finds the event consumed by the first: notify again.
                    event.notify();
                }));
            }
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            assert_eq!(woken.get(), 0);
            event.notify();
            for handle in handles {
                handle.await;
            }
            assert_eq!(woken.get(), 2);
        });
    }
}
