//! A wake-up for one waiting task on the same thread, without a lock.
//!
//! tokio's `Notify` is thread-safe: registering a waiter and removing it again each take its
//! mutex. A worker's sessions and backends all live on one thread, and each wake-up has one
//! waiter, so a flag and the waiter's waker in `Cell`s do the same job.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct LocalNotify {
    /// A notification not consumed yet (like `Notify`'s permit: one is kept, not counted).
    notified: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl LocalNotify {
    pub fn new() -> LocalNotify {
        LocalNotify::default()
    }

    /// Wakes the waiter, or the next one to wait when none waits now.
    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// Completes once notified (at once when a notification is pending), consuming it.
    /// One task waits at a time: a second waiter replaces the first.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.notified.replace(false) {
                return Poll::Ready(());
            }
            let waker = match self.waiter.take() {
                Some(waker) if waker.will_wake(cx.waker()) => waker,
                _ => cx.waker().clone(),
            };
            self.waiter.set(Some(waker));
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[tokio::test]
    async fn a_notification_before_the_wait_is_kept_once() {
        let notify = LocalNotify::new();
        notify.notify();
        notify.notify();
        notify.notified().await;
        let second = tokio::time::timeout(std::time::Duration::from_millis(20), notify.notified());
        assert!(second.await.is_err(), "two notifications make one permit, as with Notify");
    }

    #[tokio::test]
    async fn a_waiting_task_is_woken() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let notify = Rc::new(LocalNotify::new());
                let waiter = tokio::task::spawn_local({
                    let notify = notify.clone();
                    async move { notify.notified().await }
                });
                tokio::task::yield_now().await;
                notify.notify();
                tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                    .await
                    .expect("woken")
                    .unwrap();
            })
            .await;
    }
}
