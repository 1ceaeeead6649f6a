//! The account endpoints, one file per flow.

pub mod login;
pub mod me;
pub mod register;
pub mod session;
mod tokens;
