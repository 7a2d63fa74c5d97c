#!/usr/bin/env python3
"""End-to-end OAuth check with clients nobody on the team wrote: the official MCP Python SDK's
OAuth client (`mcp.client.auth.OAuthClientProvider`), a client that behaves the way claude.ai has
been seen to behave, and a real headless Chromium (Playwright, Debian's /usr/bin/chromium) holding
a CDP virtual WebAuthn authenticator.

    e2e.py certs DIR
        Writes a throwaway CA (DIR/ca.pem, handed to the server as
        STUDIO_MCP_OAUTH_CLIENT_METADATA_CA) and a certificate for `localhost` signed by it
        (DIR/localhost.pem, DIR/localhost-key.pem) for the Client ID Metadata Document server.

    e2e.py check --certs DIR
                 --run NAME MODE CONNECTOR STATIC OTHER TENANT PERSON PERSON_ID INVITE [--run ...]
        One run per --run: NAME labels the output; MODE is
          `dcr`    the SDK, dynamic client registration;
          `cimd`   the SDK with a Client ID Metadata Document served over HTTPS from this process
                   (the browser's cookies are cleared before authorizing, so passkey sign-in is
                   exercised);
          `claude` a claude.ai-like client (below), also with a metadata document and sign-in.
        CONNECTOR is the server's connector URL (`http://localhost:<port>/mcp`: its connector
        door, an origin of its own, path exactly /mcp); STATIC its static door's MCP URL (the
        public URL + /mcp); OTHER another server's connector URL, where this server's tokens must
        be refused; TENANT the tenant id whoami must name; PERSON and PERSON_ID the invited
        person's name and id (`person list`), which whoami must name too; INVITE the invite link
        the admin CLI printed (on the connector origin).

Every run first checks both doors with plain HTTP. The static door (once per server): no path of
its origin answers with OAuth, OpenID or protected-resource metadata (the RFC 8414, RFC 9728 and
OpenID well-known paths, bare and suffixed with /mcp and /connector; /authorize, /token,
/register, /revoke; the people's pages): each is 404 and never JSON metadata; /connector is 410
with a message naming the connector URL; its 401 has no resource_metadata. The connector door:
its 401 names <origin>/.well-known/oauth-protected-resource/mcp, both resource metadata forms name
`resource` byte-equal to CONNECTOR, and the authorization server metadata has the origin as
issuer and <origin>/authorize, /token, /register, /revoke as endpoints.

An SDK run (dcr, cimd): the person registers a passkey through the invite link in their own
browser context; the SDK connects to CONNECTOR, gets 401, discovers the protected resource and
authorization server metadata, registers (or uses the metadata document URL as client_id), sends
the browser to /authorize (sign-in with the passkey if needed, then consent), exchanges the code
with PKCE and resource=CONNECTOR, initializes, lists tools and calls whoami; then the token is
refreshed and whoami called again. The access token is refused at STATIC and at OTHER.

A claude.ai-like run follows what claude.ai has been observed to do, literally: given only
CONNECTOR, it POSTs initialize and gets 401; fetches the path-suffixed
/.well-known/oauth-protected-resource/mcp FIRST (built from the URL, whatever the 401 says) and
requires `resource` byte-equal to CONNECTOR; reads the authorization server metadata but IGNORES
its endpoint URLs, appending /authorize, /token and /register to the origin; identifies itself
with a Client ID Metadata Document (token_endpoint_auth_method `none`, redirect URI claude.ai's
own https://claude.ai/api/mcp/auth_callback, which the browser never leaves for: Playwright
answers it); drives passkey sign-in and consent in Chromium; exchanges the code with PKCE and
resource; initializes and reaches tools/list and whoami with the access token. Then it refreshes
twice (each refresh rotates the refresh token; each new access token works on CONNECTOR, and the
last is refused at STATIC and at OTHER), and finally replays a spent refresh token, which must be
refused.

Prints one line per step (PASS/INFO); on the first failure prints FAIL with the reason and the
last HTTP exchanges, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlparse

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from playwright.async_api import async_playwright

CHROMIUM = os.environ.get("OAUTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STEP_S = 20  # one browser step (a page load, a WebAuthn ceremony, a redirect)
RUN_S = 90  # one whole run
HTTP_S = 15  # one HTTP request

CLIENT_NAME = "studio-mcp e2e"


class CheckFailed(Exception):
    pass


def check(condition: Any, what: str, detail: Any = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}: {detail}" if detail != "" else what)
    print(f"PASS {what}", flush=True)


def info(what: str) -> None:
    print(f"INFO {what}", flush=True)


# --------------------------------------------------------------------------------------------
# Certificates (`e2e.py certs DIR`)
# --------------------------------------------------------------------------------------------


def make_certs(out: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studio-mcp oauth e2e throwaway CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "localhost.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path = out / "localhost-key.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)


# --------------------------------------------------------------------------------------------
# The Client ID Metadata Document, served over HTTPS from a thread of this process
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetadataDocumentServer:
    """https://localhost:<port>/oauth/client.json; records every request it answers."""

    PATH = "/oauth/client.json"

    def __init__(self, certs: Path, redirect_uri: str, client_name: str = "") -> None:
        self.requests: list[str] = []
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certs / "localhost.pem", certs / "localhost-key.pem")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                outer.requests.append(f"{self.command} {self.path} (User-Agent: {self.headers.get('User-Agent')})")
                if self.path != MetadataDocumentServer.PATH:
                    self.send_error(404)
                    return
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}{self.PATH}"
        self.document = {
            "client_id": self.url,
            "client_name": client_name or CLIENT_NAME,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------------
# HTTP traffic log (every request the SDK's client sends, auth flow included)
# --------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = ""
        if "www-authenticate" in self.headers:
            extra = f" WWW-Authenticate: {self.headers['www-authenticate']}"
        if self.status is not None and self.status >= 300 and "location" in self.headers:
            extra += f" Location: {self.headers['location']}"
        return f"{self.method} {self.url} -> {self.status}{extra}"


class Traffic:
    def __init__(self) -> None:
        self.log: list[Exchange] = []

    async def on_request(self, request: Any) -> None:
        form: dict[str, list[str]] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            try:
                form = parse_qs(request.content.decode())
            except Exception:  # noqa: BLE001 - a streamed body: not needed
                form = {}
        request.extensions["e2e_exchange"] = ex = Exchange(request.method, str(request.url), form=form)
        self.log.append(ex)

    async def on_response(self, response: Any) -> None:
        ex = response.request.extensions.get("e2e_exchange")
        if ex is not None:
            ex.status = response.status_code
            ex.headers = {k.lower(): v for k, v in response.headers.items()}

    def since(self, mark: int) -> list[Exchange]:
        return self.log[mark:]

    def tail(self, n: int = 20) -> Iterator[str]:
        for ex in self.log[-n:]:
            yield str(ex)


# --------------------------------------------------------------------------------------------
# The browser: one context (cookies, passkey) per person
# --------------------------------------------------------------------------------------------


class Person:
    def __init__(self, browser: Any, name: str, label: str) -> None:
        self.browser = browser
        self.name = name
        self.label = label
        self.console: list[str] = []
        self.refused: list[str] = []  # main-frame documents answered with an error status

    async def open(self) -> None:
        self.context = await self.browser.new_context()
        self.context.set_default_timeout(STEP_S * 1000)
        self.page = await self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"console.{m.type}: {m.text} ({m.location.get('url')})"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("response", self._on_response)
        # The virtual authenticator belongs to this page's target: every step uses this one page.
        self.cdp = await self.context.new_cdp_session(self.page)
        await self.cdp.send("WebAuthn.enable")
        added = await self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        self.authenticator = added["authenticatorId"]

    async def _on_response(self, response: Any) -> None:
        request = response.request
        if response.status >= 400 and request.is_navigation_request() and request.frame == self.page.main_frame:
            sent = await request.all_headers()
            shown = {k: v for k, v in sent.items() if k in ("origin", "referer", "content-type", "sec-fetch-site")}
            self.refused.append(f"{request.method} {request.url} -> {response.status} (request headers {shown})")

    async def close(self) -> None:
        await self.context.close()

    async def credentials(self) -> list[dict[str, Any]]:
        got = await self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return got["credentials"]

    async def describe_page(self) -> str:
        try:
            body = (await self.page.inner_text("body", timeout=2000)).strip().replace("\n", " | ")
        except Exception as exc:  # noqa: BLE001
            body = f"(no body: {exc})"
        console = "; ".join(self.console[-5:]) or "none"
        return f"page {self.page.url} says {body[:400]!r}; console: {console}"

    async def register_passkey(self, invite: str, base: str) -> None:
        response = await self.page.goto(invite)
        status = response.status if response else None
        check(status == 200, f"{self.label} invite page {invite} loads (HTTP {status})", await self.describe_page())
        button = self.page.locator("#passkey")
        try:
            await button.click()
            await self.page.get_by_role("heading", name=re.compile("Passkey created")).wait_for()
        except Exception as exc:  # noqa: BLE001 - a Playwright timeout: say what the page shows
            raise CheckFailed(f"{self.label} passkey registration: {exc}; {await self.describe_page()}") from None
        creds = await self.credentials()
        check(
            len(creds) == 1 and creds[0].get("rpId") == "localhost" and creds[0].get("isResidentCredential"),
            f"{self.label} {self.name} registered a passkey (resident, rpId localhost) from the invite page",
            creds,
        )
        cookies = await self.context.cookies(base)
        check(cookies, f"{self.label} ...and the browser holds a session cookie for {base}", cookies)
        flags = ", ".join(
            f"{c['name']}: httpOnly={c.get('httpOnly')} sameSite={c.get('sameSite')} secure={c.get('secure')}"
            for c in cookies
        )
        info(f"{self.label} cookies: {flags}")

    async def authorize(self, url: str, redirect_uri: str, expect_sign_in: bool) -> AuthorizationCodeResult:
        """Drives this person's browser from the authorization URL to the redirect URI."""
        loop = asyncio.get_running_loop()
        landed: asyncio.Future[str] = loop.create_future()

        async def catch(route: Any) -> None:
            if not landed.done():
                landed.set_result(route.request.url)
            await route.fulfill(status=200, content_type="text/html", body="<h1>e2e: authorization response</h1>")

        def at_redirect(u: str) -> bool:
            return u.startswith(redirect_uri)

        await self.page.route(at_redirect, catch)
        try:
            parsed = parse_qs(urlparse(url).query)
            info(
                f"{self.label} authorization request: client_id={parsed.get('client_id')} "
                f"scope={parsed.get('scope')} resource={parsed.get('resource')}"
            )
            response = await self.page.goto(url)
            status = response.status if response else None
            check(
                status == 200,
                f"{self.label} GET /authorize answers 200",
                f"HTTP {status}; {await self.describe_page()}",
            )
            allow = self.page.locator('button[name="decision"][value="allow"]')
            sign_in = self.page.locator("#passkey")
            try:
                await allow.or_(sign_in).first.wait_for()
            except Exception as exc:  # noqa: BLE001
                raise CheckFailed(
                    f"{self.label} neither consent nor sign-in shown: {exc}; {await self.describe_page()}"
                ) from None
            if await sign_in.count() and not await allow.count():
                check(
                    expect_sign_in,
                    f"{self.label} /authorize shows the passkey sign-in page (no session)",
                    "the browser had a session from the invite, yet /authorize asks to sign in; "
                    + await self.describe_page(),
                )
                try:
                    await sign_in.click()
                    await allow.wait_for()
                except Exception as exc:  # noqa: BLE001
                    raise CheckFailed(f"{self.label} passkey sign-in: {exc}; {await self.describe_page()}") from None
                check(
                    self.page.url == url or urlparse(self.page.url).path == urlparse(url).path,
                    f"{self.label} passkey sign-in returns to /authorize, which now shows consent",
                    self.page.url,
                )
            else:
                check(
                    not expect_sign_in,
                    f"{self.label} /authorize shows consent directly (session from the invite)",
                    "cookies were cleared, yet /authorize shows consent without a sign-in; "
                    + await self.describe_page(),
                )
            consent = (await self.page.inner_text("body")).replace("\n", " ")
            info(f"{self.label} consent page: {consent[:200]!r}")
            self.refused.clear()
            await allow.click()
            deadline = time.monotonic() + STEP_S
            while not landed.done() and not self.refused and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if not landed.done():
                refused = f"; {self.refused[0]}" if self.refused else ""
                raise CheckFailed(
                    f"{self.label} clicking allow did not lead to {redirect_uri}{refused}; {await self.describe_page()}"
                )
            target = landed.result()
        finally:
            await self.page.unroute(at_redirect, catch)
        query = parse_qs(urlparse(target).query)
        check("error" not in query, f"{self.label} redirect to the client carries no error", target)
        code, state = query.get("code", [None])[0], query.get("state", [None])[0]
        iss = query.get("iss", [None])[0]
        check(code and state, f"{self.label} consent redirects to the client with code, state (and iss {iss})", target)
        return AuthorizationCodeResult(code=code, state=state, iss=iss)


# --------------------------------------------------------------------------------------------
# The SDK side
# --------------------------------------------------------------------------------------------


class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def payload(result: dict[str, Any]) -> Any:
    if result.get("structuredContent") is not None:
        return result["structuredContent"]
    return json.loads(text_of(result))


def find_value(data: Any, wanted: str, path: str = "") -> list[str]:
    """JSON paths in `data` whose value is the string `wanted`."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            found += find_value(v, wanted, f"{path}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += find_value(v, wanted, f"{path}[{i}]")
    elif data == wanted:
        found.append(path or ".")
    return found


def mcp_post_headers(token: str | None = None) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": CLIENT_NAME, "version": "1"},
    },
}


@dataclass
class Run:
    name: str
    mode: str
    connector: str  # the connector URL: <connector origin>/mcp
    static: str  # the static door's MCP URL: <public URL>/mcp
    other: str  # another server's connector URL
    tenant: str
    person: str
    person_id: str
    invite: str

    @property
    def label(self) -> str:
        return f"[{self.name}]"

    @property
    def origin(self) -> str:
        """The connector door's origin (the connector URL without its /mcp)."""
        return origin_of(self.connector)

    @property
    def static_origin(self) -> str:
        return origin_of(self.static)


def origin_of(mcp_url: str) -> str:
    parsed = urlparse(mcp_url)
    return f"{parsed.scheme}://{parsed.netloc}"


# The static door's origin must answer none of these with a document (RFC 8414 section 3, RFC
# 9728 section 3, OpenID Connect Discovery; bare, suffixed with the MCP paths, and OpenID's
# path-appended form, which MCP clients also try).
STATIC_DOCUMENTS = [
    f"/.well-known/{doc}{suffix}"
    for doc in ("oauth-authorization-server", "oauth-protected-resource", "openid-configuration")
    for suffix in ("", "/mcp", "/connector")
] + ["/mcp/.well-known/openid-configuration", "/connector/.well-known/openid-configuration"]
STATIC_ENDPOINTS = ["/authorize", "/token", "/register", "/revoke"]
STATIC_PAGES = ["/", "/signin", "/signout", "/assets/passkey.js", "/invite/x", "/approve/apr_x"]
METADATA_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "jwks_uri",
    "resource",
    "authorization_servers",
)


def metadata_in(r: Any) -> list[str]:
    """The OAuth/OpenID/protected-resource metadata fields a response body carries, if it is JSON."""
    try:
        body = json.loads(r.content)
    except ValueError:
        return []
    return [k for k in METADATA_FIELDS if k in body] if isinstance(body, dict) else []


async def static_door_checks(http: Any, run: Run) -> None:
    """The static door: /mcp for static bearer tokens only, and nothing of OAuth at any path."""
    label, origin = run.label, run.static_origin
    check(
        origin != run.origin,
        f"{label} the static door {origin} and the connector door {run.origin} are two origins",
    )
    answered: dict[str, int] = {}
    for path in STATIC_DOCUMENTS:
        r = await http.get(origin + path)
        answered[f"GET {path}"] = r.status_code
        # Below /mcp the MCP endpoint itself may answer: its 401 must not point anywhere either.
        refused_by_mcp = (
            path.startswith("/mcp/")
            and r.status_code == 401
            and "resource_metadata" not in r.headers.get("www-authenticate", "")
        )
        if (r.status_code != 404 and not refused_by_mcp) or metadata_in(r):
            raise CheckFailed(
                f"{label} static door GET {origin}{path}: expected 404 and no metadata, got HTTP "
                f"{r.status_code} {r.headers.get('content-type')} {r.text[:200]!r}"
            )
    # A POST probe is sent on a connection of its own: the server answers an unknown path before
    # reading the body and may then close the connection without saying so (see the report).
    close = {"Connection": "close"}
    for path in STATIC_ENDPOINTS + STATIC_PAGES:
        for method in ("GET", "POST"):
            if method == "POST" and path == "/register":
                r = await http.post(
                    origin + path,
                    json={"client_name": CLIENT_NAME, "redirect_uris": ["http://127.0.0.1:9/cb"]},
                    headers=close,
                )
            elif method == "POST":
                r = await http.post(origin + path, data={"grant_type": "authorization_code", "code": "x"}, headers=close)
            else:
                r = await http.get(origin + path)
            answered[f"{method} {path}"] = r.status_code
            if r.status_code != 404 or metadata_in(r):
                raise CheckFailed(
                    f"{label} static door {method} {origin}{path}: expected 404 and no metadata, got HTTP "
                    f"{r.status_code} {r.headers.get('content-type')} {r.text[:200]!r}"
                )
    check(
        True,
        f"{label} static door {origin}: {len(answered)} OAuth/OpenID/resource metadata paths, "
        f"endpoints and pages all 404 without metadata ({', '.join(STATIC_DOCUMENTS[:3])}, … "
        f"{', '.join(STATIC_ENDPOINTS)}, …; under /mcp: "
        f"{sorted({v for k, v in answered.items() if k.startswith('GET /mcp/')})})",
    )
    for method in ("GET", "POST"):
        r = await http.request(method, f"{origin}/connector", json=INITIALIZE if method == "POST" else None)
        check(
            r.status_code == 410 and run.connector in r.text and not metadata_in(r)
            and "json" not in r.headers.get("content-type", ""),
            f"{label} static door {method} /connector: 410, a plain message naming {run.connector} "
            f"({r.text.strip()[:120]!r})",
            f"HTTP {r.status_code} {r.headers.get('content-type')} {r.text[:300]!r}",
        )
    for what, headers in (("without a token", mcp_post_headers()), ("with a bad token", mcp_post_headers("nope"))):
        r = await http.post(run.static, json=INITIALIZE, headers=headers)
        challenge = r.headers.get("www-authenticate", "")
        check(
            r.status_code == 401 and challenge.lower().startswith("bearer") and "resource_metadata" not in challenge,
            f"{label} static door POST /mcp {what}: 401, WWW-Authenticate {challenge!r} without resource_metadata",
            f"HTTP {r.status_code} WWW-Authenticate {challenge!r} {r.text[:200]!r}",
        )


async def discovery_checks(http: Any, run: Run) -> dict[str, Any]:
    """The connector door seen with plain HTTP; returns the authorization server metadata."""
    label, origin, connector = run.label, run.origin, run.connector
    check(
        urlparse(connector).path == "/mcp" and not urlparse(connector).query,
        f"{label} the connector URL {connector} ends in exactly /mcp",
    )
    prm_url = f"{origin}/.well-known/oauth-protected-resource/mcp"
    r = await http.post(connector, json=INITIALIZE, headers=mcp_post_headers())
    challenge = r.headers.get("www-authenticate", "")
    check(r.status_code == 401, f"{label} POST {connector} without a token: 401", f"HTTP {r.status_code} {r.text[:200]}")
    check(
        challenge.lower().startswith("bearer") and f'resource_metadata="{prm_url}"' in challenge,
        f"{label} ...WWW-Authenticate names resource_metadata={prm_url}",
        challenge,
    )
    check('scope="mcp"' in challenge, f'{label} ...and scope="mcp"', challenge)

    for url in (prm_url, f"{origin}/.well-known/oauth-protected-resource"):
        r = await http.get(url)
        check(r.status_code == 200, f"{label} GET {url}: 200", f"HTTP {r.status_code} {r.text[:200]}")
        prm = r.json()
        check(prm.get("resource") == connector, f"{label} ...resource is {connector}, byte for byte", prm)
        servers = prm.get("authorization_servers") or []
        check(servers == [origin], f"{label} ...authorization_servers {servers} is the origin alone", prm)

    asm_url = f"{origin}/.well-known/oauth-authorization-server"
    r = await http.get(asm_url)
    check(r.status_code == 200, f"{label} GET {asm_url}: 200", f"HTTP {r.status_code} {r.text[:200]}")
    asm = r.json()
    check(asm.get("issuer") == origin, f"{label} ...issuer {asm.get('issuer')} is the connector origin", asm)
    endpoints = {k: asm.get(f"{k}_endpoint") for k in ("authorization", "token", "registration", "revocation")}
    expected = {
        "authorization": f"{origin}/authorize",
        "token": f"{origin}/token",
        "registration": f"{origin}/register",
        "revocation": f"{origin}/revoke",
    }
    check(endpoints == expected, f"{label} ...endpoints at the origin's root: {sorted(set(endpoints.values()))}", endpoints)
    check(
        asm.get("client_id_metadata_document_supported") is True,
        f"{label} ...client_id_metadata_document_supported: true",
        asm,
    )
    check("S256" in (asm.get("code_challenge_methods_supported") or []), f"{label} ...PKCE S256", asm)
    check(
        "none" in (asm.get("token_endpoint_auth_methods_supported") or []),
        f"{label} ...token_endpoint_auth_methods {asm.get('token_endpoint_auth_methods_supported')} include none",
        asm,
    )
    info(
        f"{label} authorization server: grants={asm.get('grant_types_supported')} "
        f"scopes={asm.get('scopes_supported')} response_types={asm.get('response_types_supported')}"
    )
    return asm


async def plain_checks(run: Run, done_static: set[str]) -> None:
    async with httpx2.AsyncClient(timeout=HTTP_S) as plain:
        try:
            if run.static_origin not in done_static:
                await static_door_checks(plain, run)
                done_static.add(run.static_origin)
            await discovery_checks(plain, run)
        except httpx2.HTTPError as exc:
            where = f" ({exc.request.method} {exc.request.url})" if getattr(exc, "_request", None) else ""
            raise CheckFailed(f"{run.label} plain HTTP checks: {type(exc).__name__}: {exc}{where}") from None


async def refused_elsewhere(run: Run, token: str, what: str) -> None:
    """An access token of this connector is nothing to the static door and to another server."""
    async with httpx2.AsyncClient(timeout=HTTP_S) as plain:
        for door, url in (("the static door", run.static), ("the other server's connector", run.other)):
            r = await plain.post(url, json=INITIALIZE, headers=mcp_post_headers(token))
            check(
                r.status_code == 401,
                f"{run.label} {what} is refused at {door} {url} (HTTP {r.status_code})",
                r.text[:200],
            )


async def one_run(run: Run, browser: Any, certs: Path, traffic: Traffic) -> None:
    label = run.label
    connector = run.connector
    cimd = run.mode == "cimd"
    print(f"== {label} the SDK, {run.mode.upper()}, against {connector}: tenant {run.tenant}, person {run.person}", flush=True)
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # nothing listens: the browser's route catches it

    person = Person(browser, run.person, label)
    await person.open()
    failures: list[BaseException] = []  # raised inside the SDK's auth flow, which may wrap them
    try:
        await person.register_passkey(run.invite, run.origin)
        if cimd:
            # A fresh sign-in: the authorize step must show the passkey sign-in page.
            await person.context.clear_cookies()
            info(f"{label} cleared the browser's cookies: /authorize must ask for the passkey")

        doc_server = MetadataDocumentServer(certs, redirect_uri) if cimd else None
        with doc_server or contextlib.nullcontext():
            result: dict[str, Any] = {}

            async def redirect_handler(url: str) -> None:
                try:
                    check(
                        url.startswith(f"{run.origin}/authorize?"),
                        f"{label} the SDK sends the browser to {run.origin}/authorize",
                        url,
                    )
                    result["code"] = await person.authorize(url, redirect_uri, expect_sign_in=cimd)
                except BaseException as exc:
                    failures.append(exc)
                    raise

            async def callback_handler() -> Any:
                return result["code"]

            storage = MemoryStorage()
            provider = OAuthClientProvider(
                server_url=connector,
                client_metadata=OAuthClientMetadata(
                    client_name=CLIENT_NAME,
                    redirect_uris=[redirect_uri],
                    grant_types=["authorization_code", "refresh_token"],
                    response_types=["code"],
                    token_endpoint_auth_method="none",
                ),
                storage=storage,
                redirect_handler=redirect_handler,
                callback_handler=callback_handler,
                client_metadata_url=doc_server.url if doc_server else None,
            )
            mark = len(traffic.log)
            http = httpx2.AsyncClient(
                auth=provider,
                timeout=HTTP_S,
                event_hooks={"request": [traffic.on_request], "response": [traffic.on_response]},
            )
            try:
                async with http, streamable_http_client(connector, http_client=http) as streams:
                    read, write = streams[0], streams[1]
                    async with ClientSession(read, write) as session:
                        with anyio.fail_after(RUN_S):
                            init = wire(await session.initialize())
                        flow = traffic.since(mark)
                        await sdk_flow_checks(run, flow, storage, doc_server, init)

                        with anyio.fail_after(HTTP_S):
                            tools = await session.list_tools()
                        names = sorted(t.name for t in tools.tools)
                        check("whoami" in names, f"{label} tools/list ({len(names)} tools) includes whoami", names)

                        client_id = storage.client_info.client_id
                        await whoami(session, run, "whoami", client_id)

                        # Refresh: mark the access token expired; the provider must refresh it before the
                        # next request (the SDK exposes no public knob for this, so its context is used).
                        if storage.tokens.refresh_token:
                            old = storage.tokens.access_token
                            provider.context.token_expiry_time = time.time() - 1
                            mark = len(traffic.log)
                            await whoami(session, run, "whoami after a token refresh", client_id)
                            refreshes = [
                                ex
                                for ex in traffic.since(mark)
                                if ex.method == "POST" and ex.form.get("grant_type") == ["refresh_token"]
                            ]
                            check(
                                refreshes and refreshes[0].status == 200,
                                f"{label} ...the SDK refreshed the token (refresh_token grant: HTTP "
                                f"{refreshes[0].status if refreshes else None})",
                                [str(e) for e in traffic.since(mark)],
                            )
                            check(storage.tokens.access_token != old, f"{label} ...and got a new access token")
                            check(
                                refreshes[0].form.get("resource") in (None, [connector]),
                                f"{label} ...the refresh asked for resource {refreshes[0].form.get('resource')}",
                                refreshes[0].form.get("resource"),
                            )
                        else:
                            info(f"{label} no refresh_token issued: refresh not exercised")

                        # The access token is for this connector only: not the static door, not another server.
                        await refused_elsewhere(run, storage.tokens.access_token, "the OAuth access token")
            except BaseException as exc:  # noqa: BLE001 - any failure, reported below
                if failures:
                    raise failures[0] from None
                if (found := check_failure(exc)) is not None:
                    raise found from None
                raise CheckFailed(f"{label} MCP session over OAuth failed: {describe(exc)}") from None
    finally:
        await person.close()


# --------------------------------------------------------------------------------------------
# A claude.ai-like client: what claude.ai has been seen to do, followed literally
# --------------------------------------------------------------------------------------------

CLAUDE_REDIRECT = "https://claude.ai/api/mcp/auth_callback"
CLAUDE_NAME = "Claude (studio-mcp e2e stand-in)"
PROTOCOL = "2025-11-25"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def challenge_param(header: str, name: str) -> str | None:
    found = re.search(rf'{name}="([^"]*)"', header)
    return found.group(1) if found else None


class RawMcp:
    """JSON-RPC over Streamable HTTP by hand, as a connector platform sends it: one POST per
    message, a bearer token, JSON or an SSE stream back."""

    def __init__(self, http: Any, url: str, label: str) -> None:
        self.http, self.url, self.label = http, url, label
        self.next_id = 1

    async def post(self, token: str | None, method: str, params: Any = None, notify: bool = False) -> tuple[Any, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            body["params"] = params
        if not notify:
            body["id"] = self.next_id
            self.next_id += 1
        headers = mcp_post_headers(token)
        if method != "initialize":
            headers["MCP-Protocol-Version"] = PROTOCOL
        r = await self.http.post(self.url, json=body, headers=headers)
        message = None
        ctype = r.headers.get("content-type", "")
        if r.status_code == 200 and ctype.startswith("application/json"):
            message = r.json()
        elif r.status_code == 200 and ctype.startswith("text/event-stream"):
            for line in r.text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    data = json.loads(line[5:])
                    if data.get("id") == body.get("id"):
                        message = data
        return r, message

    async def result(self, token: str, method: str, params: Any, what: str) -> dict[str, Any]:
        r, message = await self.post(token, method, params)
        check(
            r.status_code == 200 and isinstance(message, dict) and "result" in message,
            f"{self.label} {what}",
            f"HTTP {r.status_code} WWW-Authenticate {r.headers.get('www-authenticate')!r} {r.text[:300]!r}",
        )
        return message["result"]

    async def whoami(self, token: str, run: Run, client_id: str, what: str) -> None:
        result = await self.result(token, "tools/call", {"name": "whoami", "arguments": {}}, f"{what}: tools/call whoami answers")
        check(not result.get("isError"), f"{run.label} ...not an error", text_of(result))
        data = payload(result)
        person = data.get("person") or {}
        check(
            data.get("tenant") == run.tenant
            and person.get("name") == run.person
            and person.get("id") == run.person_id
            and person.get("client") == client_id,
            f"{run.label} ...names tenant {run.tenant!r}, person {run.person!r} ({run.person_id}), client {client_id}",
            json.dumps(data, sort_keys=True),
        )


async def claude_run(run: Run, browser: Any, certs: Path) -> None:
    label, origin, connector = run.label, run.origin, run.connector
    print(f"== {label} a claude.ai-like client, given only {connector}: tenant {run.tenant}, person {run.person}", flush=True)
    http = httpx2.AsyncClient(timeout=HTTP_S, follow_redirects=False)
    person = Person(browser, run.person, label)
    await person.open()
    try:
        async with http:
            mcp = RawMcp(http, connector, label)
            # 1. The URL alone: initialize, 401.
            r, _ = await mcp.post(None, "initialize", INITIALIZE["params"])
            challenge = r.headers.get("www-authenticate", "")
            check(r.status_code == 401, f"{label} POST initialize to {connector}: 401 ({challenge})", f"HTTP {r.status_code} {r.text[:200]}")
            scope = challenge_param(challenge, "scope")

            # 2. The path-suffixed protected resource metadata FIRST, built from the URL.
            prm_url = f"{origin}/.well-known/oauth-protected-resource{urlparse(connector).path}"
            r = await http.get(prm_url)
            check(r.status_code == 200, f"{label} GET {prm_url} (first, path-suffixed): 200", f"HTTP {r.status_code} {r.text[:200]}")
            prm = r.json()
            check(
                isinstance(prm.get("resource"), str) and prm["resource"] == connector,
                f"{label} ...resource {prm.get('resource')!r} is byte-equal to the URL it was given",
                prm,
            )
            servers = prm.get("authorization_servers") or []
            check(servers and servers[0] == origin, f"{label} ...its authorization server is {origin}", prm)
            scope = scope or " ".join(prm.get("scopes_supported") or []) or None

            # 3. The authorization server metadata: read, but its endpoint URLs ignored.
            r = await http.get(f"{origin}/.well-known/oauth-authorization-server")
            check(r.status_code == 200, f"{label} GET {origin}/.well-known/oauth-authorization-server: 200", r.text[:200])
            asm = r.json()
            check(
                asm.get("client_id_metadata_document_supported") is True
                and "none" in (asm.get("token_endpoint_auth_methods_supported") or [])
                and "S256" in (asm.get("code_challenge_methods_supported") or []),
                f"{label} ...metadata documents, token_endpoint_auth_method none and S256 supported",
                asm,
            )
            authorize_ep, token_ep, register_ep = f"{origin}/authorize", f"{origin}/token", f"{origin}/register"
            info(
                f"{label} ignoring the metadata's endpoints ({asm.get('authorization_endpoint')}, "
                f"{asm.get('token_endpoint')}, {asm.get('registration_endpoint')}): appending to the origin "
                f"{authorize_ep}, {token_ep}, {register_ep}"
            )
            # claude.ai registers at <origin>/register when it does not identify itself by document.
            r = await http.post(
                register_ep,
                json={
                    "client_name": CLAUDE_NAME,
                    "redirect_uris": [CLAUDE_REDIRECT],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                },
            )
            check(
                r.status_code == 201 and r.json().get("client_id"),
                f"{label} POST {register_ep} (dynamic registration, as claude.ai falls back to): 201",
                f"HTTP {r.status_code} {r.text[:300]}",
            )

            # 4. The person: a passkey from the invite, then no session (sign-in at /authorize).
            await person.register_passkey(run.invite, origin)
            await person.context.clear_cookies()
            info(f"{label} cleared the browser's cookies: /authorize must ask for the passkey")

            with MetadataDocumentServer(certs, CLAUDE_REDIRECT, CLAUDE_NAME) as doc:
                client_id = doc.url
                verifier, code_challenge = pkce_pair()
                state = secrets.token_urlsafe(24)
                params = {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": CLAUDE_REDIRECT,
                    "code_challenge": code_challenge,
                    "code_challenge_method": "S256",
                    "state": state,
                    "resource": connector,
                }
                if scope:
                    params["scope"] = scope
                got = await person.authorize(f"{authorize_ep}?{urlencode(params)}", CLAUDE_REDIRECT, expect_sign_in=True)
                check(got.state == state, f"{label} ...the state came back unchanged")
                if got.iss is not None:
                    check(got.iss == origin, f"{label} ...iss {got.iss} is the origin (RFC 9207)", got.iss)
                check(
                    any(q.startswith(f"GET {MetadataDocumentServer.PATH}") for q in doc.requests),
                    f"{label} the server fetched the client metadata document over HTTPS ({len(doc.requests)} request(s))",
                    doc.requests,
                )

                # 5. The code for tokens, at <origin>/token, with PKCE and the resource.
                async def token_request(form: dict[str, str], what: str) -> dict[str, Any]:
                    r = await http.post(token_ep, data=form)
                    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                    check(
                        r.status_code == 200
                        and isinstance(body.get("access_token"), str)
                        and str(body.get("token_type", "")).lower() == "bearer"
                        and isinstance(body.get("refresh_token"), str)
                        and "no-store" in r.headers.get("cache-control", ""),
                        f"{label} {what}: 200, a bearer access token (expires_in {body.get('expires_in')}, "
                        f"scope {body.get('scope')}) and a refresh token, Cache-Control no-store",
                        f"HTTP {r.status_code} Cache-Control {r.headers.get('cache-control')!r} "
                        f"{ {k: (v if 'token' not in k else '…') for k, v in body.items()} or r.text[:300]}",
                    )
                    return body

                tokens = await token_request(
                    {
                        "grant_type": "authorization_code",
                        "code": got.code,
                        "redirect_uri": CLAUDE_REDIRECT,
                        "client_id": client_id,
                        "code_verifier": verifier,
                        "resource": connector,
                    },
                    f"POST {token_ep} (authorization_code, PKCE verifier, resource={connector})",
                )

                # 6. MCP with the access token.
                access = tokens["access_token"]
                init = await mcp.result(access, "initialize", INITIALIZE["params"], f"initialize with the access token at {connector}")
                info(f"{label} server {init.get('serverInfo')}, protocol {init.get('protocolVersion')}")
                r, _ = await mcp.post(access, "notifications/initialized", notify=True)
                check(r.status_code in (200, 202), f"{label} notifications/initialized: HTTP {r.status_code}", r.text[:200])
                listed = await mcp.result(access, "tools/list", {}, "tools/list with the access token answers")
                names = sorted(t.get("name") for t in listed.get("tools", []))
                check("whoami" in names, f"{label} ...{len(names)} tools, whoami among them", names)
                await mcp.whoami(access, run, client_id, "with the first access token")

                # 7. Refresh, twice: each rotates the refresh token; each new access token works.
                spent = []
                for n in (1, 2):
                    old_access, old_refresh = tokens["access_token"], tokens["refresh_token"]
                    tokens = await token_request(
                        {
                            "grant_type": "refresh_token",
                            "refresh_token": old_refresh,
                            "client_id": client_id,
                            "resource": connector,
                        },
                        f"refresh #{n} (POST {token_ep}, refresh_token, resource)",
                    )
                    check(
                        tokens["access_token"] != old_access and tokens["refresh_token"] != old_refresh,
                        f"{label} ...a new access token and a new (rotated) refresh token",
                    )
                    spent.append(old_refresh)
                    await mcp.result(tokens["access_token"], "tools/list", {}, f"tools/list with the access token of refresh #{n}")
                    await mcp.whoami(tokens["access_token"], run, client_id, f"after refresh #{n}")

                # 8. The audience: the refreshed token is this connector's, and nothing else's.
                await refused_elsewhere(run, tokens["access_token"], "the refreshed access token")

                # 9. A spent refresh token is refused.
                r = await http.post(
                    token_ep,
                    data={"grant_type": "refresh_token", "refresh_token": spent[0], "client_id": client_id, "resource": connector},
                )
                check(
                    r.status_code == 400 and "invalid_grant" in r.text,
                    f"{label} the first, spent refresh token is refused: 400 invalid_grant",
                    f"HTTP {r.status_code} {r.text[:200]}",
                )
                r, _ = await mcp.post(tokens["access_token"], "tools/list", {})
                info(
                    f"{label} after that replay the latest access token answers HTTP {r.status_code} "
                    f"({'the grant was revoked on reuse' if r.status_code == 401 else 'the grant stays'})"
                )
    finally:
        await person.close()


def describe(exc: BaseException) -> str:
    found = check_failure(exc)
    if found is not None:
        return str(found)
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return f"{type(exc).__name__}: {exc}"


async def sdk_flow_checks(
    run: Run, flow: list[Exchange], storage: MemoryStorage, doc_server: Any, init: dict[str, Any]
) -> None:
    label = run.label
    server = init.get("serverInfo", {})
    check(
        server.get("name"),
        f"{label} initialize over OAuth (server {server.get('name')}, protocol {init.get('protocolVersion')})",
        init,
    )
    first = flow[0] if flow else None
    check(
        first is not None and first.status == 401 and "resource_metadata" in first.headers.get("www-authenticate", ""),
        f"{label} the SDK's first request got 401 with resource_metadata",
        [str(e) for e in flow[:3]],
    )
    registrations = [e for e in flow if e.method == "POST" and urlparse(e.url).path.endswith("/register")]
    client_id = storage.client_info.client_id if storage.client_info else None
    if doc_server is not None:
        check(
            client_id == doc_server.url and not registrations,
            f"{label} the SDK used the metadata document URL as client_id (no dynamic registration)",
            f"client_id={client_id}; registrations: {[str(e) for e in registrations]}",
        )
        check(
            any(r.startswith(f"GET {MetadataDocumentServer.PATH}") for r in doc_server.requests),
            f"{label} the server fetched the client metadata document over HTTPS "
            f"({len(doc_server.requests)} request(s): {doc_server.requests[:1]})",
            doc_server.requests,
        )
    else:
        check(
            registrations and registrations[0].status == 201 and client_id,
            f"{label} dynamic client registration (HTTP {registrations[0].status if registrations else None}, "
            f"client_id {client_id})",
            [str(e) for e in flow],
        )
    tokens = [e for e in flow if e.method == "POST" and e.form.get("grant_type") == ["authorization_code"]]
    check(
        tokens and tokens[-1].status == 200 and storage.tokens,
        f"{label} authorization code exchanged with PKCE (token type {storage.tokens.token_type if storage.tokens else None}, "
        f"expires_in {storage.tokens.expires_in if storage.tokens else None}, "
        f"refresh token: {bool(storage.tokens and storage.tokens.refresh_token)}, scope {storage.tokens.scope if storage.tokens else None})",
        [str(e) for e in flow],
    )
    check(
        "code_verifier" in tokens[-1].form and tokens[-1].form.get("resource") == [run.connector],
        f"{label} ...the token request carried code_verifier and resource={run.connector}",
        {k: v for k, v in tokens[-1].form.items() if k != "code"},
    )


async def whoami(session: Any, run: Run, what: str, client_id: str) -> dict[str, Any]:
    """Calls whoami; it must name the tenant and, for an OAuth token, the person and the client."""
    label = run.label
    with anyio.fail_after(HTTP_S):
        me = wire(await session.call_tool("whoami", {}))
    check(not me.get("isError"), f"{label} {what} is not an error", text_of(me))
    data = payload(me)
    info(f"{label} {what} answered {json.dumps(data, sort_keys=True)}")
    check(data.get("tenant") == run.tenant, f"{label} {what} names tenant {run.tenant!r}", data.get("tenant"))
    person = data.get("person")
    check(
        isinstance(person, dict) and person.get("name") == run.person and person.get("id") == run.person_id,
        f"{label} ...and person {run.person!r} ({run.person_id})",
        f"person: {person!r}",
    )
    check(person.get("client") == client_id, f"{label} ...connected through client {client_id}", f"person: {person!r}")
    return person


def check_failure(exc: BaseException) -> CheckFailed | None:
    if isinstance(exc, CheckFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if (found := check_failure(inner)) is not None:
            return found
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and isinstance(cause, CheckFailed):
        return cause
    return None


async def check_all(runs: list[Run], certs: Path) -> None:
    traffic = Traffic()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            info(f"browser: Chromium {browser.version}; mcp SDK {sdk_version()}")
            done_static: set[str] = set()
            try:
                for run in runs:
                    started = time.monotonic()
                    print(f"== {run.label} both doors with plain HTTP: static {run.static}, connector {run.connector}", flush=True)
                    await plain_checks(run, done_static)
                    if run.mode == "claude":
                        with anyio.fail_after(RUN_S):
                            await claude_run(run, browser, certs)
                    else:
                        await one_run(run, browser, certs, traffic)
                    print(f"PASS {run.label} done in {time.monotonic() - started:.1f} s", flush=True)
            finally:
                await browser.close()
    except BaseException:
        if traffic.log:
            print("last HTTP exchanges of the SDK:", file=sys.stderr)
            for line in traffic.tail():
                print(f"  {line}", file=sys.stderr)
        raise


def sdk_version() -> str:
    from importlib.metadata import version

    return version("mcp")


def main() -> int:
    # The SDK logs a traceback of its own when the OAuth flow fails; the FAIL line says it better.
    logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    certs = sub.add_parser("certs", help="write a throwaway CA and a localhost certificate")
    certs.add_argument("dir", type=Path)
    chk = sub.add_parser("check", help="run the end-to-end checks")
    chk.add_argument("--certs", type=Path, required=True)
    chk.add_argument(
        "--run",
        nargs=9,
        action="append",
        required=True,
        metavar=("NAME", "MODE", "CONNECTOR", "STATIC", "OTHER", "TENANT", "PERSON", "PERSON_ID", "INVITE"),
    )
    args = parser.parse_args()
    if args.command == "certs":
        make_certs(args.dir)
        return 0
    runs = [Run(*r) for r in args.run]
    for r in runs:
        if r.mode not in ("dcr", "cimd", "claude"):
            parser.error(f"--run {r.name}: MODE must be dcr, cimd or claude")
        for what, url in (("CONNECTOR", r.connector), ("STATIC", r.static), ("OTHER", r.other)):
            if urlparse(url).path != "/mcp":
                parser.error(f"--run {r.name}: {what} must be an MCP URL <origin>/mcp, got {url}")
    try:
        asyncio.run(check_all(runs, args.certs))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - report any failure, then exit non-zero
        failed = check_failure(exc)
        print(f"FAIL {failed if failed is not None else describe(exc)}", file=sys.stderr, flush=True)
        if failed is None:
            import traceback

            traceback.print_exception(exc)
        return 1
    print("oauth e2e: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
