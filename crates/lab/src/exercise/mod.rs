//! Exercises that check themselves, of three kinds:
//!
//! - [`predict`]: the learner writes a count down before a run; the check
//!   says whether the run agreed, and why.
//! - [`configure`]: the learner writes client settings; the lab runs its real
//!   fault scenario with them and says what they did.
//! - [`code`]: the learner writes a consumer or a read-process-write loop in
//!   `crates/exercises/src/`; the grader runs it as a child process against
//!   Kafka, kills it with SIGKILL at seeded steps ([`kit`] wraps them), starts
//!   its replacement, and audits by id. [`catalog`] lists these exercises.

pub mod catalog;
pub mod code;
pub mod configure;
pub mod kit;
pub mod predict;

pub use code::{grade, CodeGrade, Program};
pub use configure::{try_settings, ConfigureVerdict};
pub use predict::{check, Verdict};
