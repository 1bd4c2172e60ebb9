//! Xumm's platform API and the sign-request broker. Nothing here may ever put the API secret
//! into a log line, an error body or a response.

pub mod broker;
pub mod callback;
pub mod client;
pub mod handle;
pub mod routes;
pub mod webhook;
