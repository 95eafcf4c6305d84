//! The file's shape: one struct per section, exactly as written, with
//! `deny_unknown_fields`, and the value types that parse while deserializing
//! (durations, addresses, CIDRs).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::de;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{Access, CookieSecure, CsrfMode, LogFormat, LoginSource, SameSite, StoreKind};

/// The whole file, as written; a missing section is its defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) session: RawSession,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) login: RawLogin,
    #[serde(default)]
    pub(super) headers: RawHeaders,
    #[serde(default)]
    pub(super) route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) log: RawLog,
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<Listen>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) redirect_http: Option<Spanned<Listen>>,
    pub(super) upstream_ca: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<Spanned<CidrOrIp>>,
    #[serde(default)]
    pub(super) trusted_origins: Vec<Spanned<String>>,
    pub(super) max_header_bytes: Option<Spanned<usize>>,
    pub(super) upstream_timeout: Option<Spanned<Dur>>,
    pub(super) shutdown_grace: Option<Dur>,
    pub(super) cgi_max_concurrent: Option<Spanned<usize>>,
    pub(super) workers: Option<Spanned<usize>>,
    pub(super) thread_per_core: Option<bool>,
    pub(super) request_header_timeout: Option<Spanned<Dur>>,
    pub(super) keepalive_timeout: Option<Spanned<Dur>>,
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) upstream_max_connections: Option<Spanned<usize>>,
    pub(super) hsts: Option<Spanned<String>>,
}

/// `listen` may be one string or a list of strings.
#[derive(Debug)]
pub(super) struct Listen(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like \"0.0.0.0:8080\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Listen, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Listen(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `server.tls`: both files are required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
}

/// `[session]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub(super) cookie_name: Option<Spanned<String>>,
    pub(super) secret_keys: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) idle_timeout: Option<Spanned<Dur>>,
    pub(super) max_lifetime: Option<Spanned<Dur>>,
    pub(super) touch_interval: Option<Dur>,
    pub(super) cookie_secure: Option<Spanned<SecureSetting>>,
    pub(super) cookie_same_site: Option<Spanned<SameSite>>,
    pub(super) cookie_path: Option<Spanned<String>>,
    pub(super) cookie_domain: Option<Spanned<String>>,
    pub(super) persistent_cookie: Option<bool>,
    pub(super) bind_ip: Option<bool>,
    pub(super) max_data_bytes: Option<Spanned<usize>>,
    pub(super) initial: Option<Spanned<BTreeMap<String, InitialValue>>>,
}

/// `cookie_secure` is "auto", or a boolean.
#[derive(Debug, Clone, Copy)]
pub(super) struct SecureSetting(pub(super) CookieSecure);

impl<'de> Deserialize<'de> for SecureSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Name(String),
        }
        match Either::deserialize(d)? {
            Either::Bool(true) => Ok(Self(CookieSecure::Always)),
            Either::Bool(false) => Ok(Self(CookieSecure::Never)),
            Either::Name(name) => match name.as_str() {
                "auto" => Ok(Self(CookieSecure::Auto)),
                "true" | "always" => Ok(Self(CookieSecure::Always)),
                "false" | "never" => Ok(Self(CookieSecure::Never)),
                other => Err(de::Error::custom(format!(
                    "cookie_secure must be \"auto\", true or false, not {other:?}"
                ))),
            },
        }
    }
}

/// Initial data values may be strings, numbers or booleans; all become strings.
#[derive(Debug)]
pub(super) struct InitialValue(pub(super) String);

impl<'de> Deserialize<'de> for InitialValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Self(match Scalar::deserialize(d)? {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }))
    }
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) kind: Option<Spanned<StoreKind>>,
    pub(super) snapshot: Option<String>,
    pub(super) snapshot_interval: Option<Spanned<Dur>>,
    pub(super) max_sessions: Option<Spanned<usize>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) key_prefix: Option<String>,
}

/// `[login]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    pub(super) source: Option<Spanned<LoginSource>>,
    pub(super) users_file: Option<Spanned<String>>,
    pub(super) groups_file: Option<Spanned<String>>,
    pub(super) remember_me: Option<Spanned<Dur>>,
    pub(super) page: Option<Spanned<String>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) expired_message: Option<String>,
    pub(super) max_attempts: Option<Spanned<u32>>,
    pub(super) attempt_window: Option<Spanned<Dur>>,
    pub(super) template: Option<Spanned<String>>,
    pub(super) basic_realm: Option<Spanned<String>>,
    pub(super) replay_max_bytes: Option<Spanned<usize>>,
    pub(super) replay_ttl: Option<Spanned<Dur>>,
}

/// `[headers]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaders {
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) send_id: Option<bool>,
    pub(super) sign_key: Option<Spanned<SignKeySpecs>>,
}

/// `headers.sign_key`: one secret, or a list of them (the first signs).
#[derive(Debug)]
pub(super) enum SignKeySpecs {
    /// `sign_key = "env:SIGN_KEY"`: placed at the key's own value.
    One(String),
    /// `sign_key = ["env:NEW", "env:OLD"]`: each placed at its element.
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for SignKeySpecs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = SignKeySpecs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret like \"env:SIGN_KEY\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SignKeySpecs, E> {
                Ok(SignKeySpecs::One(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SignKeySpecs, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    out.push(s);
                }
                Ok(SignKeySpecs::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[[route]]` as written; `access` is `public` unless given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: Spanned<String>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) upstream: Spanned<String>,
    #[serde(default = "default_access")]
    pub(super) access: Spanned<Access>,
    pub(super) basic_auth: Option<Spanned<bool>>,
    pub(super) csrf: Option<Spanned<CsrfMode>>,
    pub(super) allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(super) root: Option<Spanned<String>>,
    pub(super) index: Option<Spanned<String>>,
    pub(super) inject_expiry_warning: Option<Spanned<bool>>,
}

/// Routes are public unless they say otherwise (placed at the file's start:
/// nothing was written).
fn default_access() -> Spanned<Access> {
    Spanned::new(0..0, Access::Public)
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<LogFormat>,
    pub(super) level: Option<Spanned<String>>,
    pub(super) audit: Option<Spanned<String>>,
}

/// A duration written as a string with a unit: `"90s"`, `"30m"`, `"12h"`, `"7d"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = d.deserialize_any(DurVisitor)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// Takes a string only, so that a bare number is reported with the form
/// a duration needs.
struct DurVisitor;

impl de::Visitor<'_> for DurVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string with a unit, like \"90s\", \"30m\", \"12h\" or \"7d\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// The longest duration a config may give: ten years. Anything longer is a
/// typo (or an attempt to say "forever"), and would overflow the clocks'
/// arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The accepted forms, named in every duration error.
const DURATION_FORMS: &str = "write a whole number and a unit, like \"90s\", \"30m\", \"12h\" or \"7d\", or a sum like \"1h30m\" (units: ms, s, m, h, d)";

/// Parses `"90s"`, `"30m"`, `"12h"`, `"7d"`, `"250ms"`, and sums of them
/// from the largest unit down, like `"1h30m"`: whole numbers only, no
/// spaces, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err(format!("empty duration: {DURATION_FORMS}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("duration {s:?} needs a unit: {DURATION_FORMS}"));
    }
    let too_long = || {
        format!(
            "duration {s:?} is longer than ten years ({}d); leave the key out, or give a shorter time",
            MAX_DURATION.as_secs() / 86400
        )
    };
    let mut total: u128 = 0;
    let mut last_unit: Option<u128> = None;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return Err(format!("invalid duration {s:?}: {DURATION_FORMS}"));
        }
        let unit_ms: u128 = match &rest[digits..digits + letters] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {other:?}; {DURATION_FORMS}"
                ));
            }
        };
        if last_unit.is_some_and(|last| unit_ms >= last) {
            return Err(format!(
                "invalid duration {s:?}: give each unit once, the largest first, like \"1h30m\""
            ));
        }
        last_unit = Some(unit_ms);
        // More than 38 digits cannot be held, and is too long anyway.
        let n: u128 = rest[..digits].parse().map_err(|_| too_long())?;
        total = n
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(too_long)?;
        rest = &rest[digits + letters..];
    }
    if total > MAX_DURATION.as_millis() {
        return Err(too_long());
    }
    // At most ten years in milliseconds: fits a u64.
    Ok(Duration::from_millis(total as u64))
}

/// Writes a duration the way a config does: `"1d12h"`, `"30m"`, `"90s"`
/// as `"1m30s"`, `"250ms"`; `"0s"` for zero.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// An entry of `trusted_proxies`: a CIDR, or a single address.
#[derive(Debug, Clone, Copy)]
pub(super) struct CidrOrIp(pub(super) IpNet);

impl<'de> Deserialize<'de> for CidrOrIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Self(IpNet::from(ip)))
            .map_err(|_| {
                de::Error::custom(format!(
                    "{s:?} is not a CIDR (like \"10.0.0.0/8\") or an IP address"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1d12h5s").unwrap(),
            Duration::from_secs(129_605)
        );
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_outside_our_forms_are_refused_in_our_words() {
        for bad in [
            "30 minutes",
            "1.5h",
            " 5m",
            "5m ",
            "5 m",
            "-5m",
            "m",
            "5M",
            "5min",
            "1w",
            "",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("\"90s\"") && e.contains("units: ms, s, m, h, d") || bad.is_empty(),
                "{bad:?}: {e}"
            );
        }
        assert!(parse_duration("").unwrap_err().contains("\"1h30m\""));
        assert!(
            parse_duration("30m1h")
                .unwrap_err()
                .contains("the largest first")
        );
        assert!(
            parse_duration("1m1m")
                .unwrap_err()
                .contains("each unit once")
        );
    }

    #[test]
    fn durations_are_written_back_in_the_same_forms() {
        for text in ["1d12h", "30m", "1m30s", "250ms", "0s", "3650d", "1h0m1s1ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(86400)), "1d");
        assert_eq!(format_duration(Duration::from_millis(3_600_250)), "1h250ms");
    }

    #[test]
    fn absurd_durations_are_refused_not_wrapped() {
        for bad in [
            "3651d",
            "99999999999d",
            "18446744073709551616s",
            "999999999999999999999999999999999999999999d",
            "87601h",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("longer than ten years (3650d)"), "{bad:?}: {e}");
        }
    }
}
