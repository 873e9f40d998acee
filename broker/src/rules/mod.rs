//! Rules that select events by their content.
//!
//! - [`pattern`]: Amazon EventBridge's event-pattern language, compiled once
//!   and matched against JSON events, with an explanation of a mismatch.

pub mod pattern;
