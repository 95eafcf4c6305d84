//! Where requests go: HTTP upstreams, the CGI gateway, FastCGI servers and
//! static files, and the headers rewritten on the way there and back.

pub mod cgi;
pub mod control;
pub mod deadline;
pub mod expiry_warning;
pub mod fastcgi;
pub mod files;
pub mod hop_by_hop;
pub mod http;
pub mod mount;
pub mod request_body;
pub mod request_headers;
pub mod signed_assertion;
pub mod tag_splice;
