#!/usr/bin/env python3
"""End-to-end OAuth check with clients nobody on the team wrote: the official MCP Python SDK's
OAuth client (`mcp.client.auth.OAuthClientProvider`) and a real headless Chromium (Playwright,
Debian's /usr/bin/chromium) holding a CDP virtual WebAuthn authenticator.

    e2e.py certs DIR
        Writes a throwaway CA (DIR/ca.pem, handed to the server as
        STUDIO_MCP_OAUTH_CLIENT_METADATA_CA) and a certificate for `localhost` signed by it
        (DIR/localhost.pem, DIR/localhost-key.pem) for the Client ID Metadata Document server.

    e2e.py check --certs DIR --run NAME MODE BASE TENANT PERSON PERSON_ID INVITE [--run ...]
        One run per --run: NAME labels the output; MODE is `dcr` (dynamic client registration)
        or `cimd` (a Client ID Metadata Document served over HTTPS from this process; the browser's
        cookies are also cleared before authorizing, so passkey sign-in is exercised); BASE is the
        server's public URL (http://localhost:<port>); TENANT the tenant id whoami must name;
        PERSON and PERSON_ID the invited person's name and id (`person list`), which whoami must
        name too; INVITE the invite link the admin CLI printed.

Each run: the person registers a passkey through the invite link in their own browser context;
the SDK connects to BASE/connector, gets 401, discovers the protected resource and authorization
server metadata, registers (or uses the metadata document URL as client_id), sends the browser to
/authorize (sign-in with the passkey if needed, then consent), exchanges the code with PKCE,
initializes, lists tools and calls whoami; then the token is refreshed and whoami called again.
Per server, the static-bearer endpoint /mcp must not advertise OAuth.

Prints one line per step (PASS/INFO); on the first failure prints FAIL with the reason and the
last HTTP exchanges, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import re
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
from urllib.parse import parse_qs, urlparse

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

    def __init__(self, certs: Path, redirect_uri: str) -> None:
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
            "client_name": CLIENT_NAME,
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
    base: str
    tenant: str
    person: str
    person_id: str
    invite: str

    @property
    def label(self) -> str:
        return f"[{self.name}]"


async def discovery_checks(http: Any, base: str, label: str) -> None:
    """The server's OAuth surface seen with plain HTTP: /connector advertises it, /mcp does not."""
    connector = f"{base}/connector"
    prm_url = f"{base}/.well-known/oauth-protected-resource/connector"

    r = await http.post(connector, json=INITIALIZE, headers=mcp_post_headers())
    challenge = r.headers.get("www-authenticate", "")
    check(r.status_code == 401, f"{label} POST /connector without a token: 401", f"HTTP {r.status_code} {r.text[:200]}")
    check(
        challenge.lower().startswith("bearer") and f'resource_metadata="{prm_url}"' in challenge,
        f"{label} ...WWW-Authenticate names resource_metadata={prm_url}",
        challenge,
    )

    r = await http.get(prm_url)
    check(r.status_code == 200, f"{label} GET {prm_url}: 200", f"HTTP {r.status_code} {r.text[:200]}")
    prm = r.json()
    check(prm.get("resource") == connector, f"{label} ...resource is {connector}", prm)
    servers = prm.get("authorization_servers") or []
    check(servers, f"{label} ...authorization_servers {servers}", prm)

    asm_url = f"{base}/.well-known/oauth-authorization-server"
    r = await http.get(asm_url)
    check(r.status_code == 200, f"{label} GET {asm_url}: 200", f"HTTP {r.status_code} {r.text[:200]}")
    asm = r.json()
    check(
        asm.get("issuer", "").rstrip("/") == servers[0].rstrip("/"),
        f"{label} ...issuer {asm.get('issuer')} is the advertised server",
        asm,
    )
    check(asm.get("registration_endpoint"), f"{label} ...registration_endpoint {asm.get('registration_endpoint')}", asm)
    check(
        asm.get("client_id_metadata_document_supported") is True,
        f"{label} ...client_id_metadata_document_supported: true",
        asm,
    )
    check("S256" in (asm.get("code_challenge_methods_supported") or []), f"{label} ...PKCE S256", asm)
    info(
        f"{label} authorization server: authorize={asm.get('authorization_endpoint')} "
        f"token={asm.get('token_endpoint')} grants={asm.get('grant_types_supported')} "
        f"auth_methods={asm.get('token_endpoint_auth_methods_supported')} scopes={asm.get('scopes_supported')}"
    )

    r = await http.post(f"{base}/mcp", json=INITIALIZE, headers=mcp_post_headers())
    challenge = r.headers.get("www-authenticate", "")
    check(r.status_code == 401, f"{label} POST /mcp without a token: 401", f"HTTP {r.status_code} {r.text[:200]}")
    check(
        challenge.lower().startswith("bearer") and "resource_metadata" not in challenge,
        f"{label} ...its WWW-Authenticate ({challenge}) has no resource_metadata",
        challenge,
    )
    r = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    check(
        r.status_code == 404,
        f"{label} GET /.well-known/oauth-protected-resource/mcp: 404",
        f"HTTP {r.status_code} {r.text[:200]}",
    )


async def one_run(run: Run, browser: Any, certs: Path, traffic: Traffic) -> None:
    label = run.label
    connector = f"{run.base}/connector"
    cimd = run.mode == "cimd"
    print(f"== {label} {run.mode.upper()} against {connector}: tenant {run.tenant}, person {run.person}", flush=True)
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # nothing listens: the browser's route catches it

    async with httpx2.AsyncClient(timeout=HTTP_S) as plain:
        try:
            await discovery_checks(plain, run.base, label)
        except httpx2.HTTPError as exc:
            where = f" ({exc.request.method} {exc.request.url})" if getattr(exc, "_request", None) else ""
            raise CheckFailed(f"{label} plain HTTP checks: {type(exc).__name__}: {exc}{where}") from None

    person = Person(browser, run.person, label)
    await person.open()
    failures: list[BaseException] = []  # raised inside the SDK's auth flow, which may wrap them
    try:
        await person.register_passkey(run.invite, run.base)
        if cimd:
            # A fresh sign-in: the authorize step must show the passkey sign-in page.
            await person.context.clear_cookies()
            info(f"{label} cleared the browser's cookies: /authorize must ask for the passkey")

        doc_server = MetadataDocumentServer(certs, redirect_uri) if cimd else None
        with doc_server or contextlib.nullcontext():
            result: dict[str, Any] = {}

            async def redirect_handler(url: str) -> None:
                try:
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
                        else:
                            info(f"{label} no refresh_token issued: refresh not exercised")

                        # The OAuth access token is for /connector only: /mcp stays static-bearer.
                        async with httpx2.AsyncClient(timeout=HTTP_S) as plain:
                            r = await plain.post(
                                f"{run.base}/mcp",
                                json=INITIALIZE,
                                headers=mcp_post_headers(storage.tokens.access_token),
                            )
                        check(
                            r.status_code == 401,
                            f"{label} the OAuth access token is refused at /mcp (HTTP {r.status_code})",
                            r.text[:200],
                        )
            except BaseException as exc:  # noqa: BLE001 - any failure, reported below
                if failures:
                    raise failures[0] from None
                if (found := check_failure(exc)) is not None:
                    raise found from None
                raise CheckFailed(f"{label} MCP session over OAuth failed: {describe(exc)}") from None
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
        "code_verifier" in tokens[-1].form and tokens[-1].form.get("resource") == [f"{run.base}/connector"],
        f"{label} ...the token request carried code_verifier and resource={run.base}/connector",
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
            try:
                for run in runs:
                    started = time.monotonic()
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
        nargs=7,
        action="append",
        required=True,
        metavar=("NAME", "MODE", "BASE", "TENANT", "PERSON", "PERSON_ID", "INVITE"),
    )
    args = parser.parse_args()
    if args.command == "certs":
        make_certs(args.dir)
        return 0
    runs = [Run(*r) for r in args.run]
    for r in runs:
        if r.mode not in ("dcr", "cimd"):
            parser.error(f"--run {r.name}: MODE must be dcr or cimd")
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
