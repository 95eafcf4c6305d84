//! Where requests go: HTTP upstreams and the CGI gateway, and the headers
//! rewritten on the way there and back.

pub mod cgi;
pub mod control;
pub mod hop_by_hop;
pub mod http;
pub mod request_body;
pub mod request_headers;
