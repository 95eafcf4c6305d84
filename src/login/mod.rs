//! The building blocks of the built-in login (`login.source = "users_file"`),
//! each free of HTTP so that it can be tested on its own.

pub mod next;
pub mod page;
pub mod password;
pub mod throttle;
pub mod users;

pub use next::safe_next;
pub use page::{LoginPage, PageContext, PageError, escape_html};
pub use password::{HashFormatError, PasswordError, check_hash, hash_password, verify_password};
pub use throttle::{RetryAfter, Throttle};
pub use users::{UsersError, UsersFile, UsersSource};
