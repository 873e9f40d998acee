//! Routing rules (docs/rules.md): EventBridge's event patterns, run inside
//! the broker as durable consumers that write what they select to target
//! topics exactly once.
//!
//! - [`pattern`]: the event-pattern language, compiled once and matched
//!   against JSON events, with an explanation of a mismatch.
//! - [`transform`]: a rule's input transform (fields picked by JSON path).
//! - [`store`]: rules and their progress, durable in `<data>/~rules/`.
//! - [`engine`]: [`Rules`], what the service and the delivery tasks share.
//! - [`event`]: a record's value parsed once, as far as the rules need.
//! - [`outbox`]: a chunk's records arranged into the batches to append.
//! - [`deliver`]: the delivery tasks, one per source partition, and how
//!   they stay exactly once across crashes.
//! - [`service`]: the `brook.v1.Rules` gRPC service.

pub mod deliver;
pub mod engine;
pub mod event;
pub mod outbox;
pub mod pattern;
pub mod service;
pub mod store;
pub mod transform;

pub use engine::Rules;
