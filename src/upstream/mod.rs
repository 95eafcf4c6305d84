//! Where requests go: HTTP upstreams, the CGI gateway and FastCGI servers, and the headers
//! rewritten on the way there and back.

pub mod cgi;
pub mod control;
pub mod fastcgi;
pub mod hop_by_hop;
pub mod http;
pub mod request_body;
pub mod request_headers;
