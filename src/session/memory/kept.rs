//! Requests kept across a sign-in, in memory: opaque bytes by id, each
//! with its end, taken once. Bounded in total size, since anyone can post
//! a form without a session: past [`MAX_KEPT_BYTES`] nothing more is kept
//! until older ones are taken or over. Swept with the sessions; never in
//! the snapshot (a restart loses them: the visitor sends the form again).

use std::sync::Mutex;
use std::sync::PoisonError;

use dashmap::DashMap;

use crate::session::id::{IdHashBuilder, SessionId};
use crate::session::store::StoreError;

/// The most bytes every kept request together may hold: 64 MiB.
pub const MAX_KEPT_BYTES: usize = 64 << 20;

/// One kept request: its bytes, and when it is over (unix seconds).
struct Kept {
    until: u64,
    bytes: Box<[u8]>,
}

/// The kept requests, and their total size.
#[derive(Default)]
pub(super) struct KeptRequests {
    by_id: DashMap<SessionId, Kept, IdHashBuilder>,
    /// Bytes held; changed under its lock with every insert and removal,
    /// so that the limit holds for requests kept at the same moment.
    bytes: Mutex<usize>,
}

impl KeptRequests {
    /// Keeps `request` under `id` until `until`.
    pub(super) fn keep(
        &self,
        id: &SessionId,
        request: &[u8],
        until: u64,
    ) -> Result<(), StoreError> {
        {
            let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
            let size = held.saturating_add(request.len());
            if size > MAX_KEPT_BYTES {
                return Err(StoreError::TooLarge {
                    size,
                    limit: MAX_KEPT_BYTES,
                });
            }
            *held = size;
        }
        let kept = Kept {
            until,
            bytes: request.into(),
        };
        if let Some(old) = self.by_id.insert(*id, kept) {
            self.release(old.bytes.len());
        }
        Ok(())
    }

    /// Takes what `id` keeps, if it is not over at `now`.
    pub(super) fn take(&self, id: &SessionId, now: u64) -> Option<Vec<u8>> {
        let (_, kept) = self.by_id.remove(id)?;
        self.release(kept.bytes.len());
        (now < kept.until).then(|| kept.bytes.into_vec())
    }

    /// Forgets every kept request that is over at `now`.
    pub(super) fn sweep(&self, now: u64) {
        let mut freed = 0;
        self.by_id.retain(|_, kept| {
            let live = now < kept.until;
            if !live {
                freed += kept.bytes.len();
            }
            live
        });
        self.release(freed);
    }

    fn release(&self, n: usize) {
        let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        *held = held.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_bounded_and_freed_by_takes_and_sweeps() {
        let kept = KeptRequests::default();
        let half = vec![0u8; MAX_KEPT_BYTES / 2];
        let (a, b, c) = (
            SessionId::generate(),
            SessionId::generate(),
            SessionId::generate(),
        );
        kept.keep(&a, &half, 100).unwrap();
        kept.keep(&b, &half, 50).unwrap();
        assert!(matches!(
            kept.keep(&c, b"x", 100),
            Err(StoreError::TooLarge { .. })
        ));
        kept.sweep(60);
        kept.keep(&c, b"x", 100).unwrap();
        assert_eq!(kept.take(&a, 60).map(|v| v.len()), Some(half.len()));
        assert!(kept.take(&a, 60).is_none());
        kept.keep(&b, &half, 100).unwrap();
        assert_eq!(*kept.bytes.lock().unwrap(), half.len() + 1);
    }
}
