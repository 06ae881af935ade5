//! What the integration tests share, included by each with `mod common;`: the harness of
//! the tests that run the `strata` binary, and the SQL scripts of `tests/sql`.
#![allow(dead_code)] // each test uses what it needs

pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod http;
pub mod sql_suite;
#[cfg(feature = "object-store")]
pub mod stores;
