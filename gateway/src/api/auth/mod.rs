//! The account endpoints, one file per flow.

mod enqueue;
pub mod login;
pub mod me;
pub mod notifications;
pub mod password_reset;
pub mod register;
pub mod session;
mod tokens;
pub mod verify_email;
