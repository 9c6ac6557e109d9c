//! The circuit breaker in front of the source: after `threshold` consecutive
//! failures it opens and refuses calls at once, so a dead database costs a
//! miss or a `through` write no timeout; after `retry_after` it lets one call
//! through (half-open), whose outcome closes or reopens it.
//!
//! Time comes in as an argument, so tests drive it without sleeping.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What INFO and CACHE.STATS print as `breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else is refused until it reports.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    retry_after: Duration,
    inner: Mutex<Inner>,
}

/// Why a call was refused: the breaker is open for this much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_in: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, retry_after: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            retry_after,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// Asks to make a call at `now`. `Ok` obliges the caller to report the
    /// outcome with [`Breaker::success`] or [`Breaker::failure`].
    pub fn acquire(&self, now: Instant) -> Result<(), Refused> {
        let mut inner = self.inner.lock();
        match *inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until } if now >= until => {
                *inner = Inner::HalfOpen;
                Ok(())
            }
            Inner::Open { until } => Err(Refused {
                retry_in: until - now,
            }),
            // The probe has not reported yet: another call would pile onto a
            // source that may still be down.
            Inner::HalfOpen => Err(Refused {
                retry_in: Duration::ZERO,
            }),
        }
    }

    pub fn success(&self) {
        *self.inner.lock() = Inner::Closed { failures: 0 };
    }

    pub fn failure(&self, now: Instant) {
        let mut inner = self.inner.lock();
        *inner = match *inner {
            Inner::Closed { failures } if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            Inner::Closed { .. } | Inner::HalfOpen => Inner::Open {
                until: now + self.retry_after,
            },
            // A call let in before the breaker opened failed late: keep the
            // deadline the first failure set.
            Inner::Open { until } => Inner::Open { until },
        };
    }

    /// The state at `now` (an open breaker whose delay passed is half-open
    /// in effect: the next call goes through).
    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.inner.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let breaker = Breaker::new(5, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(breaker.acquire(t0).is_ok());
            breaker.failure(t0);
            assert_eq!(breaker.state(t0), BreakerState::Closed);
        }
        // A success in between starts the count again.
        breaker.success();
        for _ in 0..4 {
            breaker.failure(t0);
        }
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        breaker.failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Open);
        let refused = breaker.acquire(t0 + Duration::from_secs(3)).unwrap_err();
        assert_eq!(refused.retry_in, Duration::from_secs(7));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let breaker = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.failure(t0);
        breaker.failure(t0);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert!(breaker.acquire(later).is_ok(), "the probe");
        assert!(breaker.acquire(later).is_err(), "nobody else meanwhile");

        // The probe fails: open for another full delay.
        breaker.failure(later);
        assert_eq!(breaker.state(later), BreakerState::Open);
        assert!(breaker.acquire(later + Duration::from_secs(9)).is_err());

        // The next probe succeeds: closed, every call goes through.
        let again = later + Duration::from_secs(10);
        assert!(breaker.acquire(again).is_ok());
        breaker.success();
        assert_eq!(breaker.state(again), BreakerState::Closed);
        assert!(breaker.acquire(again).is_ok());
        assert!(breaker.acquire(again).is_ok());
    }

    #[test]
    fn late_failures_keep_the_first_deadline() {
        let breaker = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.failure(t0);
        breaker.failure(t0 + Duration::from_secs(5));
        assert!(breaker.acquire(t0 + Duration::from_secs(10)).is_ok());
    }
}
