//! The external tools the eks and kind provisioners drive: how each is
//! called, and how its output is read. `process` runs any of them.

pub mod docker;
pub mod helm;
pub mod kind;
pub mod process;
pub mod terraform;
