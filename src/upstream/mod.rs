//! Where requests go: HTTP upstreams and the CGI gateway, and the headers
//! rewritten on the way there and back.

pub mod cgi;
pub mod headers;
pub mod http;
pub mod request_body;
