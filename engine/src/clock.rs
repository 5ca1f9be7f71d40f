//! Time, behind the [`Clock`] trait: the wall clock for real rollouts, a virtual clock for
//! simulations (sleeping advances it at once) and tests.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;
use std::time::Duration;

/// The controller's only source of time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    fn sleep(&self, d: Duration);
    /// A clock for one of several workers running side by side. A virtual clock forks into
    /// an independent copy, so parallel work does not add up; [`join`](Clock::join) then moves
    /// it to the latest fork. The wall clock forks into itself.
    fn fork(&self) -> Box<dyn Clock>;
    fn join(&self, forks: &[Box<dyn Clock>]);
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
    fn fork(&self) -> Box<dyn Clock> {
        Box::new(WallClock)
    }
    fn join(&self, _forks: &[Box<dyn Clock>]) {}
}

/// Simulated time: `sleep` moves it forward and returns at once.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<Timestamp>,
}

impl VirtualClock {
    pub fn new(start: Timestamp) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, d: Duration) {
        if let Ok(mut t) = self.now.lock() {
            let step = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
            *t = t.saturating_add(step).unwrap_or(*t);
        }
    }

    fn set_max(&self, other: Timestamp) {
        if let Ok(mut t) = self.now.lock() {
            if other > *t {
                *t = other;
            }
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.now.lock().map(|t| *t).unwrap_or(Timestamp::UNIX_EPOCH)
    }
    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
    fn fork(&self) -> Box<dyn Clock> {
        Box::new(VirtualClock::new(self.now()))
    }
    fn join(&self, forks: &[Box<dyn Clock>]) {
        for f in forks {
            self.set_max(f.now());
        }
    }
}

/// Seconds since the epoch, as a float (the timestamp column of samples).
pub fn epoch_secs(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_run_side_by_side() {
        let c = VirtualClock::new(Timestamp::UNIX_EPOCH);
        let a = c.fork();
        let b = c.fork();
        a.sleep(Duration::from_secs(30));
        b.sleep(Duration::from_secs(50));
        c.join(&[a, b]);
        assert_eq!(c.now().as_second(), 50);
        c.sleep(Duration::from_secs(10));
        assert_eq!(c.now().as_second(), 60);
    }
}
