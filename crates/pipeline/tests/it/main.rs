//! Integration tests of the pipeline engine.

mod golden;
