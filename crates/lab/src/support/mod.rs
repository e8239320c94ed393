//! The bottom layer, which knows nothing of Kafka's semantics: the lab's
//! error type ([`error`]), the id every record carries ([`record`]), the
//! course's local brokers and cache ([`local`]), latency histograms
//! ([`metrics`]); and small tools used everywhere above: seeded randomness
//! for repeatable fault timing, a lock that survives a panicked writer, one
//! way to wait for something, and keeping the first of equal items.

pub mod error;
pub mod local;
pub mod metrics;
pub mod record;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A small seeded generator (SplitMix64), so that a scenario's "random" fault
/// timing is the same every time for the same seed.
#[derive(Clone, Debug)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `range` (half-open).
    pub fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        let width = range.end.saturating_sub(range.start).max(1);
        range.start + self.next_u64() % width
    }
}

/// Locks `m` even if another thread panicked while holding it: the lab's
/// locks guard lists that are only pushed to, so the data is still whole.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for something to happen: asks `until` every `every` until it says
/// it happened (`Ok(None)`), or fails with [`Error::Stalled`] after `limit`,
/// naming `stage` and the last thing `until` saw (`Ok(Some(seen))`).
pub fn wait_until(
    stage: &'static str,
    limit: Duration,
    every: Duration,
    mut until: impl FnMut() -> Result<Option<String>>,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let Some(seen) = until()? else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                stage,
                waited: limit,
                detail: seen,
            });
        }
        std::thread::sleep(every);
    }
}

/// The items in first-seen order, each once.
pub fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_when_the_thing_happens_or_says_what_it_saw_last() {
        let mut polls = 0;
        wait_until("test", Duration::from_secs(5), Duration::ZERO, || {
            polls += 1;
            Ok((polls < 3).then(|| format!("poll {polls}")))
        })
        .unwrap();
        assert_eq!(polls, 3);
        let err = wait_until(
            "the test stage",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(Some("still nothing".into())),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Stalled {
                    stage: "the test stage",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("still nothing"), "{err}");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut s = Seeded::new(7);
                move |_| s.in_range(100..200)
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut s = Seeded::new(7);
                move |_| s.in_range(100..200)
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (100..200).contains(x)));
        let c: Vec<u64> = (0..5)
            .map({
                let mut s = Seeded::new(8);
                move |_| s.in_range(100..200)
            })
            .collect();
        assert_ne!(a, c);
    }
}
