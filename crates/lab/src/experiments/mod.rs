//! Experiments: many runs of the layers below, put together into what the book
//! shows. The scenario matrix, monitored runs, and the benchmark.

pub mod bench;
pub mod matrix;
pub mod monitored;
