//! Unit tests of the doctor's parsing and judging: `--connect-to`, the 401's
//! `resource_metadata`, page summaries, public addresses and its own client's name.

use std::net::SocketAddr;

use super::connection::{is_public, resource_metadata_param};
use super::http::{page_text, pinned_for};
use super::*;

#[test]
fn connect_to_takes_curls_form() {
    assert_eq!(
        parse_connect_to("Connect.Studio.Test:443:127.0.0.1:8443").unwrap(),
        ConnectTo {
            host: "connect.studio.test".into(),
            port: 443,
            to: "127.0.0.1:8443".parse().unwrap(),
        }
    );
    assert_eq!(
        parse_connect_to("a.example:443:[::1]:9000").unwrap().to,
        "[::1]:9000".parse::<SocketAddr>().unwrap()
    );
    for bad in [
        "a.example",
        "a.example:443",
        "a.example:443:127.0.0.1",
        "a.example:x:127.0.0.1:1",
        ":443:127.0.0.1:1",
        "a.example:443:name.example:1",
        "a.example:443:127.0.0.1:0",
    ] {
        assert!(parse_connect_to(bad).is_err(), "{bad} passed");
    }
}

#[test]
fn connect_to_moves_a_port_only_for_a_url_without_one() {
    let entries = [parse_connect_to("a.example:443:127.0.0.1:8443").unwrap()];
    let default = Url::parse("https://a.example/mcp").unwrap();
    assert_eq!(
        pinned_for(&default, &entries).unwrap(),
        Some("127.0.0.1:8443".parse().unwrap())
    );
    let explicit = Url::parse("https://a.example:443/mcp").unwrap();
    // The url crate drops a default port, so this is the same URL as above.
    assert!(pinned_for(&explicit, &entries).unwrap().is_some());
    let other = Url::parse("https://a.example:8443/mcp").unwrap();
    assert_eq!(pinned_for(&other, &entries).unwrap(), None);
    let moved = [parse_connect_to("a.example:8443:127.0.0.1:9443").unwrap()];
    assert!(pinned_for(&other, &moved).is_err());
    let same = [parse_connect_to("a.example:8443:127.0.0.1:8443").unwrap()];
    assert!(pinned_for(&other, &same).unwrap().is_some());
}

#[test]
fn resource_metadata_is_read_from_the_challenge() {
    let one = |v: &str| resource_metadata_param(&[v.to_owned()]);
    assert_eq!(
        one(r#"Bearer resource_metadata="https://c.example/.well-known/oauth-protected-resource/mcp", scope="mcp""#)
            .as_deref(),
        Some("https://c.example/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(
        one("Bearer error=\"invalid_token\",resource_metadata=https://c.example/x").as_deref(),
        Some("https://c.example/x")
    );
    assert_eq!(one(r#"Bearer realm="studio-mcp""#), None);
    assert_eq!(one(r#"Bearer x_resource_metadata="https://no""#), None);
}

#[test]
fn doctor_clients_are_known_by_name() {
    use crate::runtime::oauth::is_doctor_client;
    assert!(is_doctor_client(Some(DOCTOR_CLIENT_NAME)));
    assert!(!is_doctor_client(Some("Claude")));
    assert!(!is_doctor_client(None));
    // What the server keeps of a name must still say it is the doctor's.
    assert_eq!(
        crate::runtime::oauth::clean_name(DOCTOR_CLIENT_NAME),
        DOCTOR_CLIENT_NAME
    );
    assert_eq!(
        crate::runtime::oauth::client_metadata::check_redirect_uri(DOCTOR_REDIRECT_URI),
        Ok(())
    );
}

#[test]
fn pages_are_summarised_by_their_words() {
    let html = "<!doctype html><html><head><title>T</title><style>p{}</style></head>\
                <body><h1>This connection request cannot be used</h1><p>The application \
                could not be identified: it&#39;s &quot;gone&quot;.</p></body></html>";
    assert_eq!(
        page_text(html),
        "This connection request cannot be used The application could not be identified: \
         it's \"gone\"."
    );
}

#[test]
fn private_addresses_are_not_public() {
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "100.64.0.1",
        "::1",
        "fd00::1",
    ] {
        assert!(!is_public(private.parse().unwrap()), "{private}");
    }
    for public in ["203.0.113.7", "1.1.1.1", "2606:4700::1111"] {
        assert!(is_public(public.parse().unwrap()), "{public}");
    }
}
