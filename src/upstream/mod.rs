//! Backends a request can be forwarded to.
pub mod cgi;
