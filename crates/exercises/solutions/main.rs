//! The course's solutions to the exercises of `src/`: graded by
//! `cargo xtask exercise NAME --solution` and by the course's tests.

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
