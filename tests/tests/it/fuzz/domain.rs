//! Domain inputs called directly, with the invariants their callers rely on checked on every
//! input: the id newtypes (`TenantId`, `WebflowId`, `RepoName`, `PlausibleSite`, `ZoneId`,
//! `DnsName` with its patterns, `StripeCustomer`) parse what they print and deserialize exactly
//! what they parse; return paths (`safe_next`) stay on this server; redirect URIs
//! (`check_redirect_uri`) carry no fragment; the bearer credential, PKCE, the text that pages
//! show and names we keep (`text`), the public origin's authority checks and the trusted
//! proxies' `X-Forwarded-For`. And client metadata documents (`parse_client_id`,
//! `parse_document`): what a connector's document URL serves, as the fetcher validates it.

use std::net::IpAddr;

use common::domain::{
    DnsName, PlausibleSite, RepoName, StripeCustomer, TenantId, WebflowId, ZoneId,
};
use common::runtime::oauth::client_metadata::{
    check_redirect_uri, parse_client_id, parse_document,
};
use common::runtime::server::routes::PublicOrigin;
use common::runtime::server::source::TrustedProxies;
use common::text;
use serde_json::{Value, json};

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, Bytes};
use proptest::prelude::*;

/// Valid examples of everything parsed here, and the near misses tests already know.
const SEEDS: &[&str] = &[
    "acme",
    "acme-web",
    "a",
    "0123456789abcdef01234567",
    "84f4bcb7cecdd2a6b2bcd8ae",
    "acme-web/website",
    "octo-org/octo.repo_1",
    "acme.example",
    "stats.acme.example",
    "023e105f4ecef8ad9ca31a8372d0c353",
    "www.acme.example",
    "*.shop.acme.example",
    "shop.acme.example.",
    "xn--bcher-kva.example",
    "cus_NffrFeUfNV2Hib",
    "/authorize?client_id=x&state=y",
    "/",
    "//evil.example",
    "/\\evil.example",
    "https://claude.ai/api/mcp/auth_callback",
    "http://127.0.0.1:33418/callback",
    "http://localhost:54212/callback",
    "com.example.app:/oauth2redirect",
    "https://a.example/cb#x",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
    "verifier-0123456789-abcdefghijklmnopqrstuvwxyz",
    "Claude \u{202e}tnatsissA",
    "❤\u{fe0f}\u{fe0f}",
    "localhost:8787",
    "[::1]:8787",
    "https://mcp.studio.example",
    "198.51.100.9, 203.0.113.1",
    "203.0.113.0/24, 2001:db8::/32",
    "member",
    "approver",
];

/// A parse that accepts a value must accept what it prints, as the same value, and serde must
/// agree with it (stored and received values go through `Deserialize`).
fn round_trip<T, E>(
    what: &str,
    input: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    print: impl Fn(&T) -> String,
) -> Result<(), String>
where
    T: PartialEq + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let parsed = parse(input).ok();
    let via_serde = serde_json::from_value::<T>(Value::from(input)).ok();
    if parsed != via_serde {
        return Err(format!(
            "{what}: parse gives {parsed:?} but Deserialize gives {via_serde:?} for {input:?}"
        ));
    }
    if let Some(value) = parsed {
        let printed = print(&value);
        if parse(&printed).ok().as_ref() != Some(&value) {
            return Err(format!(
                "{what}: {input:?} parses, but what it prints ({printed:?}) does not"
            ));
        }
        if printed
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "?#%\\".contains(c))
        {
            return Err(format!(
                "{what}: {input:?} parses to {printed:?}, unsafe in a URL"
            ));
        }
    }
    Ok(())
}

fn check(a: &str, b: &str) -> Result<(), String> {
    round_trip("tenant id", a, TenantId::parse, |v| v.as_str().to_owned())?;
    round_trip(
        "Webflow id",
        a,
        |v| WebflowId::parse("Webflow id", v),
        |v| v.as_str().to_owned(),
    )?;
    round_trip("repository", a, RepoName::parse, |v| v.as_str().to_owned())?;
    round_trip("Plausible site", a, PlausibleSite::parse, |v| {
        v.as_str().to_owned()
    })?;
    round_trip("zone id", a, ZoneId::parse, |v| v.as_str().to_owned())?;
    round_trip("DNS name", a, DnsName::parse, |v| v.as_str().to_owned())?;
    round_trip("customer", a, StripeCustomer::parse, |v| {
        v.as_str().to_owned()
    })?;
    if let (Ok(allowed), Ok(name)) = (DnsName::parse(a), DnsName::parse(b))
        && allowed.covers(&name)
        && let Some(suffix) = allowed.as_str().strip_prefix("*.")
        && !name.as_str().ends_with(&format!(".{suffix}"))
        && allowed != name
    {
        return Err(format!(
            "{allowed:?} covers {name:?}, which is not below it"
        ));
    }

    let next = common::runtime::browser::signin::safe_next(a);
    if !next.starts_with('/')
        || next.starts_with("//")
        || next.contains('\\')
        || next.chars().any(char::is_control)
        || common::runtime::browser::signin::safe_next(&next) != next
    {
        return Err(format!("safe_next({a:?}) = {next:?} leaves this server"));
    }
    if check_redirect_uri(a).is_ok()
        && reqwest::Url::parse(a).map_or(true, |u| u.fragment().is_some())
    {
        return Err(format!(
            "redirect URI {a:?} passed with a fragment or unparsed"
        ));
    }
    if let Some(credential) = common::token::bearer(a)
        && (credential.is_empty() || credential != credential.trim() || !a.contains(credential))
    {
        return Err(format!("bearer({a:?}) = {credential:?}"));
    }
    if common::runtime::oauth::pkce_matches(a, b) && !(43..=128).contains(&a.len()) {
        return Err(format!("PKCE verifier {a:?} of length {} matched", a.len()));
    }
    common::store::people::Role::parse(a);
    common::runtime::oauth::clean_name(a);

    let shown = text::visible(a);
    if let Some(c) = text::first_unseen(&shown) {
        return Err(format!("visible({a:?}) still holds {c:?}"));
    }
    if let Some(name) = text::clean_name(a)
        && (text::first_unseen(&name).is_some()
            || name.chars().count() > text::MAX_NAME_CHARS
            || name != name.trim())
    {
        return Err(format!("clean_name({a:?}) = {name:?}"));
    }
    if text::refuse_unseen("x", a, "y").is_ok() != text::first_unseen(a).is_none() {
        return Err(format!("refuse_unseen and first_unseen disagree on {a:?}"));
    }

    let origin = PublicOrigin::parse(a);
    origin.is_authority(b);
    origin.is_origin(b);
    if let Ok(nets) = common::config::parse_trusted_proxies(a) {
        let proxies = TrustedProxies::new(nets);
        for peer in [
            "203.0.113.1",
            "::ffff:203.0.113.1",
            "2001:db8::1",
            "198.51.100.9",
        ] {
            if let Ok(peer) = peer.parse::<IpAddr>() {
                proxies.source(peer, &[b, a]);
            }
        }
    }
    Ok(())
}

/// Every domain parser and check on mutated strings, singly and in pairs.
#[test]
fn domain_inputs() {
    let seeds: Vec<String> = SEEDS.iter().map(|s| (*s).to_owned()).collect();
    let strings = || {
        prop_oneof![
            30 => mutate::short_text(seeds.clone(), &seeds),
            1 => mutate::text(seeds.clone(), &seeds),
        ]
    };
    fuzz("domain_inputs", (strings(), strings()), |(a, b)| {
        let outcome = check(a, b);
        note(if outcome.is_ok() {
            "checked"
        } else {
            "violated"
        });
        outcome
    });
}

/// A client metadata document as a connector's URL serves it: `client_id` is written into the
/// document where the seed has this placeholder, so mutated ids still match their document.
const CLIENT_ID: &str = "CLIENTIDPLACEHOLDER0";

/// Client ID Metadata Documents: the URL rules, then the document, as the fetcher applies them
/// to what a connector's server answers.
#[test]
fn client_metadata_documents() {
    let ids: Vec<String> = [
        "https://claude.ai/oauth/claude-code-client-metadata",
        "https://chatgpt.com/oauth/client-metadata.json",
        "https://vscode.dev/oauth/client-metadata.json",
        "https://app.example.com/oauth/client.json?v=2",
        "https://localhost:8443/client.json",
        "https://[2001:db8::1]/c",
        "https://xn--bcher-kva.example/c",
    ]
    .map(str::to_owned)
    .into();
    let documents = vec![
        json!({
            "client_id": CLIENT_ID,
            "client_name": "Claude Code",
            "client_uri": "https://claude.com/claude-code",
            "logo_uri": "https://claude.ai/images/claude_app_icon.png",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
        json!({
            "client_id": CLIENT_ID,
            "client_name": "  Claude\u{202e}  ",
            "client_uri": "https://claude.ai",
            "logo_uri": "javascript:alert(1)",
            "redirect_uris": [
                "https://claude.ai/api/mcp/auth_callback",
                "http://127.0.0.1:33418/callback",
                "com.example.app:/oauth2redirect",
            ],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
        json!({
            "client_id": CLIENT_ID,
            "client_name": "ChatGPT",
            "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
            "scope": "mcp",
            "contacts": ["security@example.com"],
            "tos_uri": "https://example.com/tos",
            "policy_uri": "https://example.com/privacy",
            "software_id": "chatgpt",
            "software_version": "1.2025.1",
            "jwks_uri": "https://example.com/jwks.json",
        }),
    ];
    let strategy = (
        mutate::text(ids.clone(), &ids),
        mutate::json_body(documents, &ids, &["/redirect_uris/", "/client_name", "/"]),
    );
    fuzz(
        "client_metadata_documents",
        strategy,
        |(id, body): &(String, Bytes)| {
            let parsed = parse_client_id(id);
            // Written as a JSON string's contents, escapes and all.
            let escaped = Value::from(id.as_str()).to_string();
            let escaped = &escaped[1..escaped.len() - 1];
            let document = mutate::fill(&body.0, CLIENT_ID, escaped);
            let outcome = parse_document(&document, id);
            note(match (&parsed, &outcome) {
                (Ok(_), Ok(_)) => "id and document accepted".to_owned(),
                (Err(e), _) => format!("id refused: {e}").chars().take(60).collect(),
                (Ok(_), Err(e)) => format!("document refused: {e}").chars().take(60).collect(),
            });
            if let Ok(metadata) = outcome {
                if metadata.redirect_uris.is_empty() {
                    return Err("a document without redirect URIs was accepted".into());
                }
                if let Some(bad) = metadata
                    .redirect_uris
                    .iter()
                    .find(|u| check_redirect_uri(u).is_err())
                {
                    return Err(format!("redirect URI {bad:?} accepted"));
                }
                if let Some(name) = &metadata.client_name
                    && text::first_unseen(name).is_some()
                {
                    return Err(format!(
                        "client_name {name:?} keeps a character no one sees"
                    ));
                }
            }
            Ok(())
        },
    );
}
