//! Operators between decoding and output: enrichers (timestamps, users, errno, containers) and
//! field selection, filters.

pub mod containers;
pub mod enrich;
pub mod errno;
pub mod fields;
pub mod filter;
pub mod formats;
pub mod process;
pub mod users;
