//! Integration tests of the pipeline engine.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod beacon;
mod golden;
