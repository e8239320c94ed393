//! Experiments: many runs of the layers below, put together into what the book
//! shows: the scenario matrix, monitored runs, the timelines, and the
//! benchmark. `cargo xtask regen` calls them and records their JSON.

pub mod bench;
pub mod matrix;
pub mod monitored;
pub mod timelines;
