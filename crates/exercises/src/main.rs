//! Your exercises. Each file of this folder holds one: open it, read what it
//! asks, change the code, and grade it (from a notebook's cell, or with
//! `cargo xtask exercise NAME`). The grader runs this program as a child
//! process against Kafka and kills it with SIGKILL at seeded points.

mod at_least_once_consumer;
mod at_least_once_producer;
mod at_most_once_consumer;
mod dedup_consumer;
mod exactly_once_processor;
mod offsets_in_database;
mod transactional_errors;

fn main() {
    lab::exercise::kit::main(&[
        ("at-most-once-consumer", at_most_once_consumer::run),
        ("at-least-once-consumer", at_least_once_consumer::run),
        ("at-least-once-producer", at_least_once_producer::run),
        ("dedup-consumer", dedup_consumer::run),
        ("offsets-in-database", offsets_in_database::run),
        ("exactly-once-processor", exactly_once_processor::run),
        ("transactional-errors", transactional_errors::run),
    ])
}
