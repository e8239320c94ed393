//! The failure scenarios, done honestly: real process deaths (SIGKILL of a
//! child process running this crate's own `lab` binary), a Kafka-aware proxy
//! that loses acknowledgements, broker processes stopped and killed, and the
//! transaction protocol under stress (zombies, lost commits, timeouts).

pub mod crash;
pub mod eos_stress;
pub mod holes;
pub mod leader;
pub mod lost_ack;
pub mod nemesis;
pub mod proxy;
mod scenario;

pub use scenario::{Scenario, ScenarioOptions};

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
