//! Newtypes for the identifiers that cross the tenant boundary. Parse, don't validate: once a
//! value has one of these types it is known to be well formed, so it can go into a URL path.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{what} `{value}` is not valid: {why}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn shown(value: &str) -> String {
    // Never echo an unbounded value back into an error or a log line.
    value.chars().take(64).collect()
}

/// A tenant (one client retainer): lowercase letters, digits and `-`, 1–63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let ok = !value.is_empty()
            && value.len() <= 63
            && !value.starts_with('-')
            && !value.ends_with('-')
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(ParseError {
                what: "tenant id",
                value: shown(value),
                why: "use 1-63 lowercase letters, digits or '-', not starting or ending with '-' (it becomes a host name)",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Webflow object id (site, page, collection, item, custom domain): 24 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebflowId(String);

impl WebflowId {
    pub fn parse(what: &'static str, value: &str) -> Result<Self, ParseError> {
        if value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(ParseError {
                what,
                value: shown(value),
                why: "a Webflow id is 24 hexadecimal characters",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GitHub repository as `owner/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        match value.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => {
                Ok(Self(value.to_ascii_lowercase()))
            }
            _ => Err(ParseError {
                what: "repository",
                value: shown(value),
                why: "write it as owner/name",
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site domain as Plausible names it (`example.com`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlausibleSite(String);

impl PlausibleSite {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let ok = !value.is_empty()
            && value.len() <= 253
            && value.contains('.')
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        if ok {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(ParseError {
                what: "Plausible site",
                value: shown(value),
                why: "use the site's domain, such as example.com",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_restricted() {
        assert!(TenantId::parse("acme-2").is_ok());
        for bad in ["", "Acme", "-a", "a-", "a/b", "a b", &"x".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn webflow_ids_cannot_carry_paths() {
        assert!(WebflowId::parse("site", "580e63e98c9a982ac9b8b741").is_ok());
        for bad in [
            "../../v2/sites",
            "580e63e98c9a982ac9b8b74",
            "580e63e98c9a982ac9b8b74g",
        ] {
            assert!(WebflowId::parse("site", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dns_patterns_cover_only_names_below_them() {
        let pattern = DnsName::parse("*.acme.example").unwrap();
        let exact = DnsName::parse("www.acme.example").unwrap();
        let name = |s| DnsName::parse(s).unwrap();
        assert!(pattern.covers(&name("shop.acme.example")));
        assert!(pattern.covers(&name("a.b.acme.example")));
        assert!(!pattern.covers(&name("acme.example")));
        assert!(!pattern.covers(&name("evilacme.example")));
        assert!(!pattern.covers(&name("shop.acme.example.evil.com")));
        assert!(exact.covers(&name("WWW.acme.example.")));
        assert!(!exact.covers(&name("ww.acme.example")));
        assert!(DnsName::parse("not a name").is_err());
        assert!(DnsName::parse("*.com").is_err());
    }

    #[test]
    fn repos_need_owner_and_name() {
        assert_eq!(
            RepoName::parse("Acme/Site").map(|r| r.0),
            Ok("acme/site".into())
        );
        for bad in ["acme", "acme/", "/site", "a/../b", "a/b/c"] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

/// A Cloudflare zone id: 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(String);

impl ZoneId {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(ParseError {
                what: "zone_id",
                value: shown(value),
                why: "a Cloudflare zone id is 32 hexadecimal characters",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS name a tenant may change: a full name (`www.acme.example`) or a pattern `*.suffix`
/// covering every name below the suffix (not the suffix itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

impl DnsName {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let lower = value.trim_end_matches('.').to_ascii_lowercase();
        let ok = match lower.strip_prefix("*.") {
            Some(suffix) => valid_hostname(suffix),
            None => valid_hostname(&lower),
        };
        if ok {
            Ok(Self(lower))
        } else {
            Err(ParseError {
                what: "DNS name",
                value: shown(value),
                why: "use a host name such as www.example.com or a pattern *.example.com",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this allowed name (or pattern) covers the concrete record name `name`.
    pub fn covers(&self, name: &DnsName) -> bool {
        if name.0.starts_with("*.") {
            return self.0 == name.0;
        }
        match self.0.strip_prefix("*.") {
            Some(suffix) => {
                name.0.len() > suffix.len() + 1 && name.0.ends_with(&format!(".{suffix}"))
            }
            None => self.0 == name.0,
        }
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Stripe customer id (`cus_…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StripeCustomer(String);

impl StripeCustomer {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let ok = value.len() > 4
            && value.len() <= 64
            && value.starts_with("cus_")
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(ParseError {
                what: "customer",
                value: shown(value),
                why: "a Stripe customer id looks like cus_...",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Serde for the newtypes goes through their `parse`, so a stored or received value is checked
/// exactly like one typed on the command line.
macro_rules! serde_via_parse {
    ($ty:ty, $parse:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_parse!(TenantId, TenantId::parse);
serde_via_parse!(WebflowId, |v: &str| WebflowId::parse("Webflow id", v));
serde_via_parse!(RepoName, RepoName::parse);
serde_via_parse!(PlausibleSite, PlausibleSite::parse);
serde_via_parse!(ZoneId, ZoneId::parse);
serde_via_parse!(DnsName, DnsName::parse);
serde_via_parse!(StripeCustomer, StripeCustomer::parse);
