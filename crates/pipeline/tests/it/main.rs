//! Integration tests of the pipeline engine.

mod beacon;
mod golden;
