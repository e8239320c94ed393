//! The failure scenarios, done honestly: real process deaths (SIGKILL of a
//! child process running this crate's own `lab` binary), a Kafka-aware proxy
//! that loses acknowledgements, broker processes stopped and killed, and the
//! transaction protocol under stress (zombies, lost commits, timeouts).

pub mod crash;
pub mod eos_stress;
pub mod leader;
pub mod lost_ack;
pub mod matrix;
pub mod proxy;
pub mod worker;

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

/// Ends this process at once with SIGKILL: no destructor runs, no buffer is
/// flushed, librdkafka gets no chance to send or commit anything.
pub fn die_now() -> ! {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
