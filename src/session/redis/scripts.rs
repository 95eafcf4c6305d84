//! The Lua scripts every change runs as, one file each under `lua/`, built
//! into the binary and hashed once.
//!
//! Each file opens with what it does, its KEYS and ARGV, and what it
//! returns. All but `drop_if_user.lua`, `end.lua` and `take_kept.lua` run behind
//! `common.lua`, the functions they share, and behind the one constant they share with Rust,
//! [`ROTATED_FOR`].

use redis::Script;

use crate::session::store::ROTATED_FOR;

/// The functions the scripts share; not a script of its own.
const COMMON: &str = include_str!("lua/common.lua");

/// The Lua scripts, hashed once.
pub(super) struct Scripts {
    /// `lua/load.lua`: reads a session and refreshes its idle deadline.
    pub(super) load: Script,
    /// `lua/update.lua`: applies a data change, creating the session if asked.
    pub(super) update: Script,
    /// `lua/login.lua`: a whole login, when every key is in one slot.
    pub(super) login: Script,
    /// `lua/login_1_index.lua`: cluster login, step 1, on the user's set.
    pub(super) login_index: Script,
    /// `lua/login_2_take.lua`: cluster login, step 2, on the old session.
    pub(super) login_take: Script,
    /// `lua/login_3_put.lua`: cluster login, step 3, on the new session.
    pub(super) login_put: Script,
    /// `lua/drop_if_user.lua`: ends a session if it belongs to a user.
    pub(super) drop_if_user: Script,
    /// `lua/end.lua`: ends a session (a logout) and says whose it was.
    pub(super) end: Script,
    /// `lua/end_if_live.lua`: ends a live signed-in session, named by tag.
    pub(super) end_if_live: Script,
    /// `lua/take_kept.lua`: takes a kept request, once.
    pub(super) take_kept: Script,
}

impl Scripts {
    /// Builds and hashes every script.
    pub(super) fn new() -> Self {
        let common = format!("local ROTATED_FOR = {ROTATED_FOR}\n{COMMON}");
        let with_common = |body: &str| Script::new(&[&common, body].concat());
        Scripts {
            load: with_common(include_str!("lua/load.lua")),
            update: with_common(include_str!("lua/update.lua")),
            login: with_common(include_str!("lua/login.lua")),
            login_index: with_common(include_str!("lua/login_1_index.lua")),
            login_take: with_common(include_str!("lua/login_2_take.lua")),
            login_put: with_common(include_str!("lua/login_3_put.lua")),
            drop_if_user: Script::new(include_str!("lua/drop_if_user.lua")),
            end: Script::new(include_str!("lua/end.lua")),
            end_if_live: with_common(include_str!("lua/end_if_live.lua")),
            take_kept: Script::new(include_str!("lua/take_kept.lua")),
        }
    }
}
