//! A one-slot channel where the newest item wins: sending never blocks; an item nobody took
//! yet is replaced by the new one and counted as dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

struct Shared {
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// The sending side of [`latest`].
pub struct LatestSender<T> {
    tx: Sender<T>,
    // Lets the sender take a stale item back out of the full slot.
    steal: Receiver<T>,
    shared: Arc<Shared>,
}

/// The receiving side of [`latest`].
pub struct LatestReceiver<T> {
    rx: Receiver<T>,
    shared: Arc<Shared>,
}

/// A newest-wins channel of capacity one.
pub fn latest<T>() -> (LatestSender<T>, LatestReceiver<T>) {
    let (tx, rx) = bounded(1);
    let shared = Arc::new(Shared {
        dropped: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    (
        LatestSender {
            tx,
            steal: rx.clone(),
            shared: shared.clone(),
        },
        LatestReceiver { rx, shared },
    )
}

impl<T> LatestSender<T> {
    /// Puts `item` in the slot, replacing (and dropping) one still waiting there. Returns
    /// whether one was replaced, or gives `item` back when the receiver is gone.
    pub fn send(&self, mut item: T) -> Result<bool, T> {
        let mut replaced = false;
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(item);
            }
            match self.tx.try_send(item) {
                Ok(()) => return Ok(replaced),
                Err(TrySendError::Full(back)) => {
                    // The receiver may take it meanwhile: then the slot is free anyway.
                    if self.steal.try_recv().is_ok() {
                        self.shared.dropped.fetch_add(1, Ordering::SeqCst);
                        replaced = true;
                    }
                    item = back;
                }
                Err(TrySendError::Disconnected(back)) => return Err(back),
            }
        }
    }

    /// Items replaced before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl<T> LatestReceiver<T> {
    /// Waits up to `timeout` for an item. `Err(Disconnected)` once the sender is gone and
    /// the slot is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// Items replaced before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl<T> Drop for LatestReceiver<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_and_stale_items_are_counted() {
        let (tx, rx) = latest();
        assert_eq!(tx.send(1), Ok(false));
        assert_eq!(tx.send(2), Ok(true));
        assert_eq!(tx.send(3), Ok(true));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(3));
        assert_eq!(tx.dropped(), 2);
        assert_eq!(rx.dropped(), 2);
        assert_eq!(tx.send(4), Ok(false));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(4));
        assert!(rx.recv_timeout(Duration::from_millis(10)).is_err());
    }

    #[test]
    fn ends_when_either_side_goes() {
        let (tx, rx) = latest();
        tx.send(7).unwrap();
        drop(tx);
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(7));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected)
        );
        let (tx, rx) = latest::<u32>();
        drop(rx);
        assert_eq!(tx.send(1), Err(1));
    }

    #[test]
    fn a_fast_sender_never_blocks_and_the_receiver_sees_the_newest() {
        let (tx, rx) = latest();
        let producer = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                tx.send(i).unwrap();
            }
            tx.dropped()
        });
        let mut last = None;
        let mut taken = 0u64;
        while let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
            if let Some(l) = last {
                assert!(v > l, "items arrive in order");
            }
            last = Some(v);
            taken += 1;
        }
        let dropped = producer.join().unwrap();
        assert_eq!(last, Some(9_999), "the newest item is never lost");
        assert_eq!(taken + dropped, 10_000, "every item is taken or counted");
    }
}
