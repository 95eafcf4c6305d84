//! sessiongate: a reverse proxy that gives sessions to web sites that have none.

pub mod upstream;
