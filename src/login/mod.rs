//! The building blocks of the built-in login (`login.source = "users_file"`),
//! each free of HTTP so that it can be tested on its own.

pub mod password;

pub use password::{HashFormatError, PasswordError, check_hash, hash_password, verify_password};
