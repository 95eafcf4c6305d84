//! The deadline of an upstream request (`upstream_timeout`), on a timer
//! that each client connection keeps from request to request.
//!
//! A fresh timer per request is registered in tokio's timer wheel when it
//! is first polled and taken out again when the response arrives: two
//! passes through the timer driver's lock for a deadline that almost never
//! fires. A kept timer is only pushed later: moving a pending timer's
//! deadline later is one atomic write, and the wheel finds out when the old
//! deadline comes round (once per `upstream_timeout` per connection, not
//! per request), the way nginx's lazy timers work.
//!
//! An HTTP/1.1 connection has one request at a time, so its timer is always
//! free. HTTP/2 requests that overlap take a fresh timer each while another
//! holds the kept one. A request dropped while waiting (its client went
//! away) gives the timer back too.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::task::Poll;

use tokio::time::{Instant, Sleep};

/// A client connection's timer for the deadlines of its upstream requests.
#[derive(Debug, Default)]
pub struct UpstreamTimer {
    /// The kept timer, while no request is using it.
    kept: Mutex<Option<Pin<Box<Sleep>>>>,
}

/// The deadline passed before the request's future was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl UpstreamTimer {
    /// Runs `work` until it is done or `deadline` passes, whichever comes
    /// first.
    pub async fn run<F: Future>(&self, deadline: Instant, work: F) -> Result<F::Output, Elapsed> {
        let mut lent = Lent {
            timer: Some(self.take(deadline)),
            owner: self,
        };
        let mut work = pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            let pending = lent
                .timer
                .as_mut()
                .is_some_and(|timer| timer.as_mut().poll(cx).is_pending());
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(Err(Elapsed))
            }
        })
        .await
    }

    /// The kept timer set to `deadline`, or a new one when it is in use.
    fn take(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).take();
        match kept {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

/// A timer on loan to one request; back to its connection when the request
/// is done with it, however that ends.
struct Lent<'a> {
    timer: Option<Pin<Box<Sleep>>>,
    owner: &'a UpstreamTimer,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut kept = self.owner.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.is_none() {
            *kept = self.timer.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs work that never ends with a deadline `after` from now, and
    /// checks that it is cut short exactly then.
    async fn cut_short_after(timer: &UpstreamTimer, after: Duration) {
        let started = Instant::now();
        let out = timer
            .run(started + after, std::future::pending::<()>())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(started.elapsed(), after);
    }

    #[tokio::test(start_paused = true)]
    async fn work_done_in_time_gives_its_output() {
        let timer = UpstreamTimer::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        let out = timer.run(deadline, async { 7 }).await;
        assert_eq!(out, Ok(7));
        assert!(timer.kept.lock().unwrap().is_some(), "the timer is kept");
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_its_deadline_is_cut_short() {
        let timer = UpstreamTimer::default();
        cut_short_after(&timer, Duration::from_secs(30)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_keeps_each_request_to_its_own_deadline() {
        let timer = UpstreamTimer::default();
        // Each request is well within its own deadline, though together
        // they run far past the first one's.
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_secs(30);
            let out = timer
                .run(deadline, tokio::time::sleep(Duration::from_secs(20)))
                .await;
            assert_eq!(out, Ok(()));
        }
        // The kept timer, pushed later each time, fires for the one that
        // is late: at its own deadline, not an earlier request's.
        cut_short_after(&timer, Duration::from_secs(30)).await;
        // And after firing it serves again.
        let out = timer
            .run(Instant::now() + Duration::from_secs(30), async { 1 })
            .await;
        assert_eq!(out, Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_than_the_kept_one_still_holds() {
        let timer = UpstreamTimer::default();
        let out = timer
            .run(Instant::now() + Duration::from_secs(60), async { 1 })
            .await;
        assert_eq!(out, Ok(1));
        // The kept timer is set for 60 s; this request's deadline is sooner.
        cut_short_after(&timer, Duration::from_secs(5)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_requests_each_have_a_timer() {
        let timer = UpstreamTimer::default();
        let now = Instant::now();
        let slow = timer.run(now + Duration::from_secs(10), std::future::pending::<()>());
        let quick = timer.run(
            now + Duration::from_secs(30),
            tokio::time::sleep(Duration::from_secs(20)),
        );
        let (slow, quick) = tokio::join!(slow, quick);
        assert_eq!(slow, Err(Elapsed));
        assert_eq!(quick, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_midway_gives_the_timer_back() {
        let timer = UpstreamTimer::default();
        let abandoned = timer.run(
            Instant::now() + Duration::from_secs(30),
            std::future::pending::<()>(),
        );
        // Polled once (the timer is lent), then dropped.
        let polled = tokio::time::timeout(Duration::from_secs(1), abandoned).await;
        assert!(polled.is_err());
        assert!(timer.kept.lock().unwrap().is_some(), "the timer came back");
    }
}
