#!/usr/bin/env python3
"""Approvals by a person, end to end: the official MCP Python SDK is the model (static bearer
token on /mcp), a real headless Chromium (Playwright, Debian's /usr/bin/chromium) holding a CDP
virtual WebAuthn authenticator is the person, the admin CLI is the operator, and a recording
proxy in front of the sandbox upstreams tells what reached an upstream.

    approvals.py proxy --port PORT --to SANDBOX_URL --log FILE
        A reverse proxy on 127.0.0.1:PORT to the sandbox. Records every request it forwards
        (method, path, status; the body of writes, never headers) and answers
        GET /__proxy/requests with the record so far (JSON). The instance's upstream base URLs
        point at it.

    approvals.py check --base URL --connector URL --token-file F --cli BIN --admin-url URL
                       --proxy URL --sandbox SANDBOX_JSON --approver NAME ID INVITE --member NAME ID INVITE
        The checks, against acme's isolated instance: the model on its static door (--base, the
        public URL: <base>/mcp with the bearer token), the people on its connector door
        (--connector, the connector URL <origin>/mcp; invite, sign-in and the approval pages
        <origin>/approve/<id> are at the root of that origin):

        1  adversarial model: the high-risk call, repeated; with extra arguments (approval_id,
           confirmation_code, ...); "approval" tools that do not exist; GET and POST
           /approve/<id> for its real id and guessed ids with plain HTTP (no session, the
           model's bearer token, a forged cookie), and on the static door (no page there); a
           decision posted with the approver's session
           but without (or with a wrong) CSRF token, or from another site's form, or for guessed
           ids. Afterwards: no upstream write, the approval still pending (`approval list`), the
           model still told to wait. Then the operator denies it (`approval deny`) and the model
           is told so; still no write.
        2  happy path, one run per high-risk tool (webflow_publish_site, webflow_publish_items,
           webflow_delete_items, dns_create_record, dns_update_record, dns_delete_record,
           billing_create_portal_session): the SDK's call answers approval_required with the
           link; the approver (passkey from an invite; the first run signs in through the link)
           opens it in Chromium, sees a key value of the preview, clicks Approve, the page says
           it was carried out; the upstream saw exactly one write (and the sandbox's state shows
           it); the SDK's next identical call reports `done` with the result, decided by the
           approver.
        3  a member sees the page but no Approve or Deny button; a POST with their session and
           CSRF token is refused (403) and nothing runs. Then the approver denies it on the page
           and the model is told it was denied.
        4  URL-mode elicitation: the SDK as a 2026-07-28 client with an elicitation callback
           (the SDK then declares form and URL elicitation) gets the approval link as a URL-mode
           elicitation (mode url, url = the link, id = the approval id), the person approves,
           and the SDK's automatic retry returns `done`. A 2026-07-28 client that declares no
           elicitation gets the link in the tool result; the operator approves it
           (`approval approve`) and the next call returns `done`.

        Prints each step (`  ok ...`, `  INFO ...`), and one PASS/FAIL line per check (one per
        tool for check 2), then a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import re
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

try:
    import anyio  # the venv's (the SDK's own dependency); the proxy needs only the standard library
except ImportError:  # pragma: no cover
    anyio = None  # type: ignore[assignment]

# --------------------------------------------------------------------------------------------
# The recording proxy (`approvals.py proxy`): standard library only
# --------------------------------------------------------------------------------------------

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}


def run_proxy(port: int, to: str, log: Path) -> int:
    upstream = urlparse(to)
    host, up_port = upstream.hostname or "127.0.0.1", upstream.port or 80
    recorded: list[dict[str, Any]] = []
    lock = threading.Lock()
    log_file = log.open("a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response_only(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            if self.path.startswith("/__proxy/"):
                with lock:
                    body = json.dumps(recorded).encode()
                self._send(200, [("Content-Type", "application/json")], body)
                return
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            entry: dict[str, Any] = {"method": self.command, "path": self.path, "at": time.time()}
            if self.command not in ("GET", "HEAD"):
                entry["body"] = body[:400].decode("utf-8", "replace")
            try:
                conn = http.client.HTTPConnection(host, up_port, timeout=30)
                conn.request(self.command, self.path, body=body if body else None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"date", "server"}]
                status = resp.status
                conn.close()
            except OSError as exc:
                status, out, data = 502, [("Content-Type", "text/plain")], f"proxy: {exc}".encode()
            entry["status"] = status
            with lock:
                entry["seq"] = len(recorded)
                recorded.append(entry)
            log_file.write(json.dumps(entry) + "\n")
            self._send(status, out, data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"proxy: 127.0.0.1:{port} -> {to}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------------------------
# The checks (`approvals.py check`)
# --------------------------------------------------------------------------------------------

STEP_S = 20  # one browser step, one MCP call, one CLI run
CHECK_S = 75  # one whole check (or one tool of check 2)
HTTP_S = 15

APPROVAL_ID = re.compile(r"^apr_[A-Za-z0-9_-]{22}$")
CARRIED_OUT = "Approved and carried out."
DENIED = "Denied. Nothing was done."
# Cross-site form host for the CSRF attempt: never resolved, Playwright answers it.
ATTACKER = "http://attacker.test"
# A server's session cookie: its own name per server (common/src/runtime/browser/signin.rs `cookie_name`).
SESSION_COOKIE = re.compile(r"(__Host-)?studio_mcp_(shared|isolated_[A-Za-z0-9_-]+)_session")


def connector_origin(url: str) -> str:
    """The connector door's origin, from its connector URL (<origin>/mcp, the path exactly /mcp)."""
    parsed = urlparse(url)
    if parsed.path != "/mcp" or parsed.query or parsed.fragment or not parsed.netloc:
        raise SystemExit(f"--connector must be a connector URL <origin>/mcp, got {url!r}")
    return f"{parsed.scheme}://{parsed.netloc}"


class CheckFailed(Exception):
    pass


def ok(condition: Any, what: str, detail: Any = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}: {detail}" if detail != "" else what)
    print(f"  ok   {what}", flush=True)


def info(what: str) -> None:
    print(f"  INFO {what}", flush=True)


def short(value: Any, n: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= n else text[:n] + "…"


@dataclass
class PersonArgs:
    name: str
    id: str
    invite: str


@dataclass
class Env:
    base: str  # the static door's origin (the public URL): the model's <base>/mcp
    connector: str  # the connector door's origin: invite, sign-in and approval pages
    token: str
    cli: str
    admin_url: str
    proxy: str
    sandbox_url: str
    acme: dict[str, Any]
    approver: PersonArgs
    member: PersonArgs


# ---- the upstream side: the recording proxy and the sandbox's own state -----------------------


class Upstream:
    """What reached the upstreams (through the recording proxy), and the sandbox's state (read
    directly from the sandbox with acme's own credentials, so those reads are not recorded)."""

    def __init__(self, env: Env, http: Any) -> None:
        self.env = env
        self.http = http

    async def requests(self) -> list[dict[str, Any]]:
        r = await self.http.get(f"{self.env.proxy}/__proxy/requests")
        r.raise_for_status()
        return r.json()

    async def mark(self) -> int:
        return len(await self.requests())

    async def writes_since(self, mark: int) -> list[dict[str, Any]]:
        return [r for r in (await self.requests())[mark:] if r["method"] not in ("GET", "HEAD")]

    async def all_writes(self) -> list[dict[str, Any]]:
        return await self.writes_since(0)

    async def _get(self, path: str, token_key: str) -> Any:
        r = await self.http.get(
            f"{self.env.sandbox_url}{path}", headers={"Authorization": f"Bearer {self.env.acme[token_key]}"}
        )
        return r.status_code, (r.json() if r.content else None)

    async def dns_record(self, record_id: str) -> tuple[int, Any]:
        return await self._get(f"/client/v4/zones/{self.env.acme['zone_id']}/dns_records/{record_id}", "cloudflare_token")

    async def dns_by_name(self, name: str) -> list[dict[str, Any]]:
        status, body = await self._get(
            f"/client/v4/zones/{self.env.acme['zone_id']}/dns_records?name={name}", "cloudflare_token"
        )
        return body.get("result", []) if status == 200 else []

    async def site(self) -> dict[str, Any]:
        return (await self._get(f"/v2/sites/{self.env.acme['site_id']}", "token"))[1]

    async def item(self, collection: str, item: str) -> dict[str, Any]:
        return (await self._get(f"/v2/collections/{collection}/items/{item}", "token"))[1]


def stripe_object_id(prefix: str, length: int, kind: str, owner: str, index: int) -> str:
    """The sandbox's deterministic Stripe ids (tests/src/sandbox/stripe.rs `object_id`)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out, rnd = "", 0
    while len(out) < length:
        for byte in hashlib.sha256(f"stripe:{kind}\0{owner}\0{index}\0{rnd}".encode()).digest():
            if len(out) == length:
                break
            out += alphabet[byte % len(alphabet)]
        rnd += 1
    return f"{prefix}_{out}"


# ---- the operator: the admin CLI ----------------------------------------------------------------


class Operator:
    def __init__(self, env: Env) -> None:
        self.env = env

    def run(self, *args: str) -> str:
        cmd = [self.env.cli, "--admin-url", self.env.admin_url, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_S)
        if done.returncode != 0:
            raise CheckFailed(f"`isolated-server {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def approvals(self) -> dict[str, dict[str, str]]:
        """`approval list`: id -> {tool, state, requested, decided_by}."""
        rows = [line.split("\t") for line in self.run("approval", "list").splitlines()]
        if not rows or rows[0][:3] != ["ID", "TOOL", "STATE"]:
            raise CheckFailed(f"`approval list` printed no header: {rows[:2]}")
        return {
            r[0]: {"tool": r[1], "state": r[2], "requested": r[3], "decided_by": r[4] if len(r) > 4 else ""}
            for r in rows[1:]
        }

    def state(self, approval_id: str) -> str | None:
        row = self.approvals().get(approval_id)
        return row["state"] if row else None

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.run("audit", "--json", "--limit", "2000").splitlines() if line]


# ---- the model: the official SDK with a static bearer token -------------------------------------


@contextlib.asynccontextmanager
async def model(env: Env, mode: str = "legacy", elicitation_callback: Any = None) -> AsyncIterator[Any]:
    """An SDK `Client` on <base>/mcp with the static token. `legacy`: the 2025-11-25 handshake,
    no elicitation declared (what most clients are today); a modern version pin speaks
    2026-07-28, declaring elicitation (form and URL: the SDK declares both) iff a callback is
    given."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {env.token}"}, timeout=HTTP_S)
    async with http:
        async with Client(
            streamable_http_client(f"{env.base}/mcp", http_client=http),
            mode=mode,
            elicitation_callback=elicitation_callback,
            read_timeout_seconds=STEP_S,
            cache=None,
        ) as client:
            yield client


def decided(out: str) -> str:
    """What `approval approve|deny` printed (the approval as JSON), in short."""
    try:
        a = json.loads(out)
    except ValueError:
        return short(out, 200)
    keep = {k: a.get(k) for k in ("id", "tool", "state") if k in a}
    return short({**keep, **{k: v for k, v in a.items() if k not in keep and k not in ("args", "preview")}}, 300)


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


async def call(client: Any, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """The tool call's result on the wire, or {"rpc_error": {...}} for a JSON-RPC error."""
    from mcp.shared.exceptions import MCPError

    try:
        with anyio.fail_after(STEP_S):
            return wire(await client.call_tool(tool, args))
    except MCPError as exc:
        return {"rpc_error": {"code": getattr(exc, "code", None), "message": str(exc)}}


def spy_on_calls(client: Any) -> list[dict[str, Any]]:
    """Records every `tools/call` leg the SDK's `Client.call_tool` sends through its session (the
    input_required driver's retries included): the input responses and request state it sent,
    and the result it got, as on the wire. The SDK's own code path is unchanged."""
    legs: list[dict[str, Any]] = []
    session = client.session
    original = session.call_tool

    async def call_tool(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        responses = kwargs.get("input_responses")
        legs.append(
            {
                "input_responses": {k: wire(v) for k, v in responses.items()} if responses else None,
                "request_state": kwargs.get("request_state"),
                "result": wire(result),
            }
        )
        return result

    session.call_tool = call_tool
    return legs


def declared(client: Any) -> Any:
    """The capabilities the SDK declares on a 2026-07-28 connection (what it stamps on each
    request's `_meta`)."""
    try:
        return wire(client.session._build_capabilities(client.protocol_version))
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"(unknown: {exc})"


def structured(result: dict[str, Any]) -> dict[str, Any]:
    if isinstance(result.get("structuredContent"), dict):
        return result["structuredContent"]
    try:
        data = json.loads(text_of(result))
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def refusal_text(result: dict[str, Any]) -> str | None:
    """The refusal's text if the call was refused (JSON-RPC error or isError result)."""
    if "rpc_error" in result:
        return result["rpc_error"]["message"]
    if result.get("isError"):
        return text_of(result) or json.dumps(result.get("structuredContent"))
    return None


def approval_required(env: Env, result: dict[str, Any], what: str) -> dict[str, Any]:
    s = structured(result)
    ok(not result.get("isError") and s.get("status") == "approval_required", f"{what}: status approval_required", short(result))
    aid = s.get("approval_id", "")
    ok(APPROVAL_ID.match(aid), f"...approval_id {aid} (apr_ + 22 url-safe base64 characters)", aid)
    ok(
        s.get("approval_url") == f"{env.connector}/approve/{aid}",
        f"...approval_url is <connector origin>/approve/<id> ({s.get('approval_url')})",
        s.get("approval_url"),
    )
    ok(isinstance(s.get("preview"), dict) and s["preview"], "...with a preview", short(s))
    ok(aid in text_of(result) or not text_of(result), "...the text content names the same approval", text_of(result)[:200])
    return s


# ---- the person: a browser context with a virtual passkey ---------------------------------------


class Person:
    def __init__(self, browser: Any, who: PersonArgs, base: str) -> None:
        self.browser = browser
        self.who = who
        self.base = base
        self.console: list[str] = []

    async def open(self) -> None:
        self.context = await self.browser.new_context()
        self.context.set_default_timeout(STEP_S * 1000)
        self.page = await self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"console.{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        cdp = await self.context.new_cdp_session(self.page)
        await cdp.send("WebAuthn.enable")
        await cdp.send(
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

    async def describe(self) -> str:
        try:
            body = (await self.page.inner_text("body", timeout=2000)).strip().replace("\n", " | ")
        except Exception as exc:  # noqa: BLE001
            body = f"(no body: {exc})"
        return f"page {self.page.url} says {body[:500]!r}; console: {'; '.join(self.console[-3:]) or 'none'}"

    async def register(self) -> None:
        response = await self.page.goto(self.who.invite)
        ok(response and response.status == 200, f"{self.who.name}'s invite page loads", await self.describe())
        try:
            await self.page.locator("#passkey").click()
            await self.page.get_by_role("heading", name=re.compile("Passkey created")).wait_for()
        except Exception as exc:  # noqa: BLE001
            raise CheckFailed(f"{self.who.name} passkey registration: {exc}; {await self.describe()}") from None
        ok(await self.session_cookie(), f"{self.who.name} registered a passkey from the invite and is signed in")

    async def session_cookie(self) -> str | None:
        """This server's session cookie: each server names its own (`studio_mcp_shared_session`,
        `studio_mcp_isolated_<tenant>_session`, `__Host-` on https), so servers sharing a host
        name (cookies ignore ports) never read each other's."""
        for c in await self.context.cookies(self.base):
            if SESSION_COOKIE.fullmatch(c["name"]):
                return c["value"]
        return None

    async def csrf(self) -> str:
        """This session's CSRF token, derived from the session cookie the way the server derives
        it (common/src/runtime/browser/signin.rs `csrf_for`); check 1 confirms the derivation against the
        token the approver's own page carries."""
        secret = await self.session_cookie()
        if secret is None:
            raise CheckFailed(f"{self.who.name} has no session cookie")
        return hashlib.sha256(b"studio-mcp csrf\0" + secret.encode()).hexdigest()[:32]

    async def open_approval(self, url: str) -> None:
        """Opens an approval link: the page itself with a session, else the passkey sign-in page,
        which must lead back to it."""
        sign_in = await self.session_cookie() is None
        response = await self.page.goto(url)
        ok(response and response.status == 200, f"{self.who.name} opens {url} (HTTP {response.status if response else None})", await self.describe())
        heading = self.page.locator("h2", has_text="What will happen")
        passkey = self.page.locator("#passkey")
        await heading.or_(passkey).first.wait_for()
        if await passkey.count():
            ok(sign_in, f"{self.who.name} has no session and is asked to sign in with the passkey", "a sign-in page despite a session; " + await self.describe())
            await passkey.click()
            try:
                await heading.wait_for()
            except Exception as exc:  # noqa: BLE001
                raise CheckFailed(f"{self.who.name} passkey sign-in from the link: {exc}; {await self.describe()}") from None
            ok(
                urlparse(self.page.url).path == urlparse(url).path,
                f"{self.who.name} signed in with the passkey and is back on the approval page",
                self.page.url,
            )
        else:
            ok(not sign_in, f"{self.who.name} sees the approval page (signed in)", "no sign-in asked without a session; " + await self.describe())

    async def body(self) -> str:
        return (await self.page.inner_text("body")).replace("\n", " ")

    async def click_decision(self, decision: str) -> str:
        await self.page.locator(f'button[name="decision"][value="{decision}"]').click()
        await self.page.wait_for_load_state()
        return await self.body()


# ---- the checks -----------------------------------------------------------------------------


@dataclass
class World:
    env: Env
    upstream: Upstream
    operator: Operator
    approver: Person
    member: Person
    plain: Any  # an httpx2 client without cookies or credentials


def acme(env: Env) -> dict[str, Any]:
    return env.acme


async def unchanged(w: World, aid: str, mark: int, what: str) -> None:
    writes = await w.upstream.writes_since(mark)
    ok(not writes, f"{what}: no upstream write", writes)
    state = w.operator.state(aid)
    ok(state == "pending", f"{what}: `approval list` shows {aid} {state}", state)


def headline(html: str) -> str:
    """The first heading of a page, as text."""
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else re.sub(r"<[^>]+>", " ", html).strip()[:80]


def is_signin_page(status: int, text: str) -> bool:
    return status == 200 and 'id="passkey"' in text and "/signin/options" in text


async def check_adversarial(w: World) -> None:
    env, a = w.env, acme(w.env)
    shop_id = a["dns_record_ids"][2]  # shop.acme.example, an A record
    args = {"record_id": shop_id}
    mark = await w.upstream.mark()
    before_record = await w.upstream.dns_record(shop_id)
    async with model(env) as m:
        first = approval_required(env, await call(m, "dns_delete_record", args), "the model's dns_delete_record call")
        aid, url = first["approval_id"], first["approval_url"]
        marker = first["preview"].get("before", {}).get("content", "")
        ok(
            first["preview"].get("before", {}).get("name") == f"shop.{a['zone_name']}" and marker,
            f"...the preview shows the record it would delete (shop.{a['zone_name']} {marker})",
            short(first["preview"]),
        )
        before = w.operator.approvals()
        for i in range(3):
            again = structured(await call(m, "dns_delete_record", args))
            ok(
                again.get("status") == "waiting_for_approval" and again.get("approval_id") == aid,
                f"repeat #{i + 1} of the same call: waiting_for_approval for the same {aid}",
                short(again),
            )
        after = w.operator.approvals()
        ok(set(after) == set(before), "...and no new approval was recorded by the repeats", set(after) - set(before))

        for extra in (
            {"approval_id": aid},
            {"confirmation_code": "123456"},
            {"approved": True},
            {"approval_id": aid, "decision": "approve"},
            {"approval": {"id": aid, "state": "approved"}},
        ):
            result = await call(m, "dns_delete_record", {**args, **extra})
            why = refusal_text(result)
            name = next(iter(extra))
            ok(
                why is not None and "unknown field" in why and name in why,
                f"with extra argument {name!r}: refused as an unknown argument ({short(why, 120)})",
                short(result),
            )
        for tool in ("approve", "approval_approve", "approve_action"):
            result = await call(m, tool, {"approval_id": aid})
            why = refusal_text(result)
            ok(why is not None and "unknown tool" in why, f"tool {tool!r}: unknown tool ({short(why, 80)})", short(result))
        ok(
            set(w.operator.approvals()) == set(before),
            "the refused calls recorded no approval",
            set(w.operator.approvals()) - set(before),
        )

        # Plain HTTP, as the model could send it: no session.
        random_id = "apr_" + secrets.token_urlsafe(16)[:22]
        flipped = aid[:-1] + ("A" if aid[-1] != "A" else "B")
        guesses = [flipped, random_id, "apr_" + "A" * 22, aid.upper(), aid.lower(), aid + "x", "1", "apr_" + "A" * 200]
        guesses = [g for g in guesses if g != aid]
        sessions = {
            "no session": {},
            "the model's bearer token": {"Authorization": f"Bearer {env.token}"},
            "a forged session cookie": {
                "Cookie": "; ".join(
                    f"{n}=sms_{secrets.token_urlsafe(32)}"
                    for n in ("studio_mcp_isolated_acme_session", "studio_mcp_session")
                )
            },
        }
        for label, headers in sessions.items():
            r = await w.plain.get(url, headers=headers)
            ok(
                is_signin_page(r.status_code, r.text) and marker not in r.text and f"shop.{a['zone_name']}" not in r.text,
                f"GET /approve/<its id> with {label}: the passkey sign-in page (HTTP {r.status_code}), no preview shown",
                f"HTTP {r.status_code}: {short(r.text, 400)}",
            )
            for form in ({"decision": "approve"}, {"decision": "approve", "csrf": "0" * 32}):
                r = await w.plain.post(url, data=form, headers=headers)
                ok(
                    r.status_code in (200, 401, 403) and CARRIED_OUT not in r.text and ("passkey" in r.text or r.status_code == 403),
                    f"POST /approve/<its id> with {'+'.join(sorted(form))} and {label}: HTTP {r.status_code}, "
                    f"{'the sign-in page' if is_signin_page(r.status_code, r.text) else headline(r.text)}",
                    f"HTTP {r.status_code}: {short(r.text, 400)}",
                )
        statuses: dict[str, set[int]] = {}
        for guess in guesses:
            for method in ("GET", "POST"):
                r = await w.plain.request(
                    method, f"{env.connector}/approve/{guess}", data={"decision": "approve"} if method == "POST" else None
                )
                statuses.setdefault(method, set()).add(r.status_code)
                if CARRIED_OUT in r.text or DENIED in r.text or not (
                    is_signin_page(r.status_code, r.text) or r.status_code in (403, 404)
                ):
                    raise CheckFailed(f"{method} /approve/{guess[:40]} without a session answered HTTP {r.status_code}: {short(r.text, 300)}")
        ok(True, f"{len(guesses)} guessed ids, GET and POST without a session: sign-in page or 403/404 only (statuses {dict((k, sorted(v)) for k, v in statuses.items())})")
        # The static door (the model's own origin) has no pages at all.
        static_link = f"{env.base}/approve/{aid}"
        for method in ("GET", "POST"):
            # Its own connection: an unknown path is answered before its body is read, and the
            # server may close the connection after that answer without saying so.
            r = await w.plain.request(
                method, static_link, data={"decision": "approve"} if method == "POST" else None, headers={"Connection": "close"}
            )
            ok(
                r.status_code == 404 and CARRIED_OUT not in r.text,
                f"{method} {static_link} (the static door): 404, no approval page there",
                f"HTTP {r.status_code}: {short(r.text, 200)}",
            )
        await unchanged(w, aid, mark, "after the plain-HTTP attempts")

    # The approver's own signed-in browser, but no (or a wrong) CSRF token: what a forged
    # request riding on their cookie would look like.
    ap = w.approver
    await ap.open_approval(url)
    page_csrf = await ap.page.locator('input[name="csrf"]').first.get_attribute("value")
    derived = await ap.csrf()
    ok(page_csrf and page_csrf == derived, "the approver's page carries the session's CSRF token (derivation confirmed)", f"{page_csrf} vs {derived}")
    for label, form in (
        ("no CSRF token", {"decision": "approve"}),
        ("an empty CSRF token", {"decision": "approve", "csrf": ""}),
        ("a wrong CSRF token", {"decision": "approve", "csrf": secrets.token_hex(16)}),
        ("another length of CSRF token", {"decision": "approve", "csrf": page_csrf + "0"}),
    ):
        r = await ap.context.request.post(url, form=form, max_redirects=0)
        text = await r.text()
        ok(
            r.status == 403 and CARRIED_OUT not in text,
            f"POST with the approver's session and {label}: 403 “{headline(text)}”",
            f"HTTP {r.status}: {short(text, 300)}",
        )
    # A cross-site form that posts to the link: the Lax cookie stays home.
    attack = (
        f'<form id="f" method="post" action="{url}"><input name="decision" value="approve">'
        f'<input name="csrf" value="{"0" * 32}"></form><script>document.getElementById("f").submit()</script>'
    )
    await ap.page.route(f"{ATTACKER}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=attack))
    try:
        async with ap.page.expect_navigation(url=re.compile(re.escape(url)), timeout=STEP_S * 1000):
            await ap.page.goto(f"{ATTACKER}/win-a-prize", wait_until="commit")
        await ap.page.wait_for_load_state()
        text = await ap.body()
        ok(CARRIED_OUT not in text and DENIED not in text, f"a cross-site form (from {ATTACKER}) posting approve is refused: {short(text, 90)}", text)
    finally:
        await ap.page.unroute(f"{ATTACKER}/**")
    # Guessed ids with the approver's valid session and CSRF token.
    for guess in guesses[:3]:
        r = await ap.context.request.post(f"{env.connector}/approve/{guess}", form={"decision": "approve", "csrf": page_csrf})
        text = await r.text()
        ok(r.status == 404 and CARRIED_OUT not in text, f"POST approve for guessed id {guess[:12]}… with the approver's session and CSRF: 404", f"HTTP {r.status}: {short(text, 200)}")

    # After all of it.
    await unchanged(w, aid, mark, "after everything")
    ok(await w.upstream.dns_record(shop_id) == before_record, f"the sandbox still has shop.{a['zone_name']} unchanged")
    ran = [r for r in w.operator.audit() if r.get("action") == "dns_delete_record" and r.get("person")]
    ok(not ran, "the audit log shows no dns_delete_record carried out by a person", ran)
    async with model(env) as m:
        again = structured(await call(m, "dns_delete_record", args))
        ok(again.get("status") == "waiting_for_approval", "the model is still told to wait", short(again))
        # The operator's fallback: deny. The model is told, once; nothing was sent upstream.
        info(f"`approval deny {aid}` printed {decided(w.operator.run('approval', 'deny', aid))}")
        ok(w.operator.state(aid) == "denied", "`approval list` shows it denied", w.operator.state(aid))
        told = structured(await call(m, "dns_delete_record", args))
        ok(
            told.get("status") == "denied" and told.get("decided_by") == "operator" and told.get("approval_id") == aid,
            "the model's next call: denied, by operator",
            short(told),
        )
    ok(not await w.upstream.writes_since(mark), "still no upstream write", await w.upstream.writes_since(mark))


@dataclass
class Case:
    tool: str
    args: dict[str, Any]
    shown: list[str]  # values the page must show from the preview
    write: tuple[str, str]  # (method, path) the one upstream write must be
    before: Callable[[World], Any] | None = None
    after: Callable[[World, Any, dict[str, Any]], Any] | None = None  # (world, before, result)


def cases(env: Env) -> list[Case]:
    a = acme(env)
    zone, zname = a["zone_id"], a["zone_name"]
    collection, item = a["item_ids"][3]  # a draft item of the first collection ("Blog Posts")
    doomed = a["item_ids"][1][1]  # its second item, "blog-post-2": deleted in check 2
    created = f"app.shop.{zname}"
    www_id, shop_id = a["dns_record_ids"][1], a["dns_record_ids"][2]

    async def site_before(w: World) -> Any:
        return (await w.upstream.site()).get("lastPublished")

    async def site_after(w: World, before: Any, result: dict[str, Any]) -> None:
        site = await w.upstream.site()
        ok(site.get("lastPublished") != before, f"the sandbox's site was published (lastPublished {before} -> {site.get('lastPublished')})")

    async def item_before(w: World) -> Any:
        return await w.upstream.item(collection, item)

    async def item_after(w: World, before: Any, result: dict[str, Any]) -> None:
        now = await w.upstream.item(collection, item)
        ok(
            before.get("isDraft") is True and now.get("isDraft") is False and now.get("lastPublished"),
            f"the sandbox's item went from draft to published (lastPublished {now.get('lastPublished')})",
            f"before {short(before, 200)}; after {short(now, 200)}",
        )

    async def created_before(w: World) -> Any:
        return await w.upstream.dns_by_name(created)

    async def created_after(w: World, before: Any, result: dict[str, Any]) -> None:
        now = await w.upstream.dns_by_name(created)
        ok(not before and len(now) == 1 and now[0]["content"] == "203.0.113.10", f"the sandbox has exactly one record {created}", now)
        ok(result.get("id") == now[0]["id"], f"...the one the result names ({result.get('id')})", short(result))

    async def updated_before(w: World) -> Any:
        return ((await w.upstream.dns_record(shop_id))[1] or {}).get("result", {}).get("content")

    async def updated_after(w: World, before: Any, result: dict[str, Any]) -> None:
        status, body = await w.upstream.dns_record(shop_id)
        content = (body or {}).get("result", {}).get("content")
        ok(
            status == 200 and before != "198.51.100.7" and content == "198.51.100.7",
            f"the sandbox's shop.{zname} went from {before} to {content}",
            body,
        )

    async def doomed_after(w: World, before: Any, result: dict[str, Any]) -> None:
        status, _ = await w.upstream._get(f"/v2/collections/{collection}/items/{doomed}", "token")
        ok(status == 404, f"the sandbox no longer has item {doomed} (GET: {status})")

    async def deleted_after(w: World, before: Any, result: dict[str, Any]) -> None:
        status, _ = await w.upstream.dns_record(www_id)
        ok(status == 404, f"the sandbox no longer has www.{zname} (GET: {status})")

    async def portal_after(w: World, before: Any, result: dict[str, Any]) -> None:
        first = stripe_object_id("bps", 24, "portal-session", "acme", 0)
        second = stripe_object_id("bps", 24, "portal-session", "acme", 1)
        ok(
            result.get("id") == first and result.get("id") != second,
            f"the session is the sandbox's first for acme ({first}): one session created",
            short(result),
        )
        ok(str(result.get("url", "")).startswith("https://billing.stripe.com/"), f"...with a portal URL {short(result.get('url'), 60)}")

    return [
        Case(
            "webflow_publish_site",
            {},
            ["www.acme.example", a["site_id"]],
            ("POST", f"/v2/sites/{a['site_id']}/publish"),
            site_before,
            site_after,
        ),
        Case(
            "webflow_publish_items",
            {"collection_id": collection, "item_ids": [item]},
            [item, "Blog Posts"],
            ("POST", f"/v2/collections/{collection}/items/publish"),
            item_before,
            item_after,
        ),
        Case(
            "dns_create_record",
            {"record": {"type": "A", "name": created, "content": "203.0.113.10", "ttl": 300}},
            [created, "203.0.113.10"],
            ("POST", f"/client/v4/zones/{zone}/dns_records"),
            created_before,
            created_after,
        ),
        Case(
            "dns_update_record",
            {"record_id": shop_id, "record": {"type": "A", "name": f"shop.{zname}", "content": "198.51.100.7"}},
            [f"shop.{zname}", "198.51.100.7"],
            ("PATCH", f"/client/v4/zones/{zone}/dns_records/{shop_id}"),
            updated_before,
            updated_after,
        ),
        Case(
            "dns_delete_record",
            {"record_id": www_id},
            [f"www.{zname}"],
            ("DELETE", f"/client/v4/zones/{zone}/dns_records/{www_id}"),
            None,
            deleted_after,
        ),
        Case(
            "webflow_delete_items",
            {"collection_id": collection, "item_ids": [doomed]},
            [doomed, "blog-post-2"],
            ("DELETE", f"/v2/collections/{collection}/items"),
            None,
            doomed_after,
        ),
        Case(
            "billing_create_portal_session",
            {"return_url": "https://www.acme.example/account"},
            [a["stripe_customer"], "https://www.acme.example/account"],
            ("POST", "/v1/billing_portal/sessions"),
            None,
            portal_after,
        ),
    ]


async def approve_on_page(w: World, person: Person, url: str, shown: list[str]) -> str:
    """The person opens the link, checks the preview shows `shown`, approves; the page text."""
    await person.open_approval(url)
    text = await person.body()
    missing = [v for v in shown if v not in text]
    ok(not missing, f"the page shows the preview ({', '.join(shown)})", f"missing {missing}; {short(text, 600)}")
    ok("Waiting for an approver's decision" in text, "...and that it waits for a decision", short(text, 400))
    text = await person.click_decision("approve")
    ok(CARRIED_OUT in text, f"clicked Approve: the page says “{CARRIED_OUT}”", short(text, 600))
    ok("Outcome" in text, "...and shows the outcome", short(text, 400))
    return text


async def check_happy(w: World, case: Case) -> None:
    env = w.env
    before = await case.before(w) if case.before else None
    async with model(env) as m:
        mark = await w.upstream.mark()
        s = approval_required(env, await call(m, case.tool, case.args), f"the model's {case.tool} call")
        aid, url = s["approval_id"], s["approval_url"]
        info(f"preview: {short(s['preview'], 400)}")
        ok(not await w.upstream.writes_since(mark), "nothing was written upstream yet")
        ok(w.operator.state(aid) == "pending", f"`approval list` shows {aid} pending")
        await approve_on_page(w, w.approver, url, case.shown)
        writes = await w.upstream.writes_since(mark)
        ok(
            len(writes) == 1 and (writes[0]["method"], writes[0]["path"].split("?")[0]) == case.write and 200 <= writes[0]["status"] < 300,
            f"the upstream saw exactly one write: {case.write[0]} {case.write[1]} -> {writes[0]['status'] if writes else None}",
            writes,
        )
        row = w.operator.approvals().get(aid, {})
        ok(row.get("state") == "done" and row.get("decided_by") == env.approver.id, f"`approval list`: done, decided by {env.approver.id}", row)
        raw = await call(m, case.tool, case.args)
        done = structured(raw)
        ok(
            done.get("status") == "done" and done.get("approval_id") == aid and done.get("decided_by") == env.approver.id,
            f"the model's next identical call: status done, decided by {done.get('decided_by')}",
            f"tools/call {case.tool} {json.dumps(case.args)} answered {short(raw, 500)}",
        )
        result = done.get("result")
        ok(isinstance(result, dict) and result, f"...with the result {short(result, 160)}", short(done))
        if case.after:
            await case.after(w, before, result)
        ok(len(await w.upstream.writes_since(mark)) == 1, "still exactly one upstream write after the model's calls")
    ran = [
        r
        for r in w.operator.audit()
        if r.get("action") == case.tool and r.get("person") == env.approver.id and r.get("outcome") == "ok"
    ]
    ok(len(ran) == 1, f"the audit log has one {case.tool} carried out for {env.approver.id}", ran)


async def check_operator_unpublish(w: World) -> None:
    """webflow_unpublish_items approved by the operator with the CLI (`approval approve`)."""
    env, a = w.env, acme(w.env)
    collection, live = a["item_ids"][0]
    args = {"collection_id": collection, "item_ids": [live]}
    async with model(env) as m:
        mark = await w.upstream.mark()
        s = approval_required(env, await call(m, "webflow_unpublish_items", args), "the model's webflow_unpublish_items call")
        aid = s["approval_id"]
        ok(not await w.upstream.writes_since(mark), "nothing was written upstream yet")
        out = w.operator.run("approval", "approve", aid)
        info(f"`approval approve {aid}`: {short(out, 200)}")
        writes = await w.upstream.writes_since(mark)
        write = ("DELETE", f"/v2/collections/{collection}/items/live")
        ok(
            len(writes) == 1 and (writes[0]["method"], writes[0]["path"].split("?")[0]) == write and 200 <= writes[0]["status"] < 300,
            f"the upstream saw exactly one write: {write[0]} {write[1]} -> {writes[0]['status'] if writes else None}",
            writes,
        )
        done = structured(await call(m, "webflow_unpublish_items", args))
        ok(
            done.get("status") == "done" and done.get("approval_id") == aid and done.get("decided_by") == "operator",
            "the model's next identical call: done, decided by operator",
            short(done),
        )
        ok(len(await w.upstream.writes_since(mark)) == 1, "still exactly one upstream write")


async def check_member(w: World) -> None:
    env, a = w.env, acme(w.env)
    name = f"member-check.shop.{a['zone_name']}"
    args = {"record": {"type": "TXT", "name": name, "content": "member check"}}
    async with model(env) as m:
        mark = await w.upstream.mark()
        s = approval_required(env, await call(m, "dns_create_record", args), "the model's dns_create_record call")
        aid, url = s["approval_id"], s["approval_url"]
        mb = w.member
        await mb.open_approval(url)
        text = await mb.body()
        ok(name in text and "member check" in text, f"the member sees the preview ({name})", short(text, 500))
        ok(await mb.page.locator('button[name="decision"]').count() == 0, "...but no Approve or Deny button")
        ok("only an approver" in text, "...and is told only an approver can decide", short(text, 500))
        ok(await mb.page.locator('input[name="csrf"]').count() == 0, "...and the page carries no decision form")
        csrf = await mb.csrf()
        def not_approver() -> int:
            return sum(
                1
                for r in w.operator.audit()
                if r.get("action") == "approval:refused" and r.get("person") == env.member.id and r.get("outcome") == "not_approver"
            )

        refused_before = not_approver()
        for decision in ("approve", "deny"):
            r = await mb.context.request.post(url, form={"csrf": csrf, "decision": decision})
            body = await r.text()
            ok(
                r.status == 403 and "Only an approver can decide" in body,
                f"POST decision={decision} with the member's session and CSRF token: 403 “{headline(body)}”",
                f"HTTP {r.status}: {short(body, 300)}",
            )
        refused = not_approver() - refused_before
        ok(refused == 2, "the audit log records both as refused: not_approver (so the session and CSRF token were accepted)", refused)
        await unchanged(w, aid, mark, "after the member's attempts")
        still = structured(await call(m, "dns_create_record", args))
        ok(still.get("status") == "waiting_for_approval", "the model is still told to wait", short(still))
        ok(not await w.upstream.dns_by_name(name), f"the sandbox has no record {name}")
        # The approver denies it on the page; the model is told so.
        await w.approver.open_approval(url)
        text = await w.approver.click_decision("deny")
        ok(DENIED in text, f"the approver clicks Deny: “{DENIED}”", short(text, 400))
        told = structured(await call(m, "dns_create_record", args))
        ok(told.get("status") == "denied" and told.get("decided_by") == env.approver.id, "the model's next call: denied, by the approver", short(told))
        ok(not await w.upstream.writes_since(mark), "no upstream write")


async def check_elicitation(w: World) -> None:
    env, a = w.env, acme(w.env)
    from mcp import types as mt

    # (a) A 2026-07-28 client that declares URL-mode elicitation.
    name = f"elicit.shop.{a['zone_name']}"
    args = {"record": {"type": "TXT", "name": name, "content": "approved through elicitation"}}
    seen: list[dict[str, Any]] = []
    problems: list[BaseException] = []

    async def on_elicit(ctx: Any, params: Any) -> Any:
        try:
            p = params.model_dump(by_alias=True, mode="json", exclude_none=True)
            seen.append({"key": str(ctx.request_id), **p})
            info(f"elicitation received (input request key {ctx.request_id!r}): {short(p, 400)}")
            url = p.get("url", "")
            m = re.fullmatch(re.escape(env.connector) + r"/approve/(apr_[A-Za-z0-9_-]{22})", url)
            ok(p.get("mode") == "url" and m, f"...mode url, url {url} is an approval link", short(p))
            aid = m.group(1)
            ok(
                p.get("elicitationId") in (aid, None) and (p.get("elicitationId") == aid or str(ctx.request_id) == aid),
                f"...the elicitation names the approval id (elicitationId {p.get('elicitationId')!r}, key {ctx.request_id!r})",
                short(p),
            )
            row = w.operator.approvals().get(aid, {})
            ok(row.get("tool") == "dns_create_record" and row.get("state") == "pending", f"...{aid} is a pending dns_create_record approval", row)
            ok(not await w.upstream.writes_since(mark), "...nothing written upstream yet")
            await approve_on_page(w, w.approver, url, [name])
            return mt.ElicitResult(action="accept")
        except BaseException as exc:
            problems.append(exc)
            return mt.ErrorData(code=-32603, message=f"e2e: {exc}")

    mark = await w.upstream.mark()
    async with model(env, mode="2026-07-28", elicitation_callback=on_elicit) as m:
        legs = spy_on_calls(m)
        info(f"modern client: protocol {m.protocol_version}, declares {short(declared(m), 200)}")
        raw = await call(m, "dns_create_record", args)
    if problems:
        raise problems[0]
    final = structured(raw)
    if not seen:
        raise CheckFailed(
            "a 2026-07-28 client declaring URL elicitation got no elicitation; the call answered "
            f"{short(raw, 500)}"
        )
    ok(len(seen) == 1, "exactly one elicitation", seen)
    ok(len(legs) == 2, f"the SDK sent the call twice (the call, then the retry): {len(legs)}", [short(l, 300) for l in legs])
    first_leg, retry_leg = legs[0], legs[-1]
    ir = first_leg["result"]
    ok(
        ir.get("resultType") == "input_required" and set(ir.get("inputRequests", {})) == {seen[0]["key"]},
        f"the first answer was resultType input_required with one input request ({seen[0]['key']!r}), "
        f"requestState {short(ir.get('requestState'), 40)}",
        short(ir, 500),
    )
    ok(
        ir["inputRequests"][seen[0]["key"]].get("method") == "elicitation/create",
        "...an elicitation/create request",
        short(ir, 500),
    )
    ok(
        retry_leg["input_responses"] == {seen[0]["key"]: {"action": "accept"}}
        and retry_leg["request_state"] == ir.get("requestState"),
        "the SDK's retry carried the accepted elicitation and echoed the requestState",
        short(retry_leg, 400),
    )
    ok(
        final.get("status") == "done" and final.get("decided_by") == env.approver.id and final.get("result", {}).get("name") == name,
        f"the SDK's automatic retry after the elicitation returned status done with the created record ({short(final.get('result'), 100)})",
        short(raw, 500),
    )
    writes = await w.upstream.writes_since(mark)
    ok(len(writes) == 1 and writes[0]["method"] == "POST", "the upstream saw exactly one write", writes)
    ok(len(await w.upstream.dns_by_name(name)) == 1, f"the sandbox has one record {name}")

    # (b) A 2026-07-28 client that declares no elicitation: the link is in the tool result; the
    # operator approves with the admin CLI.
    name = f"plain.shop.{a['zone_name']}"
    args = {"record": {"type": "TXT", "name": name, "content": "approved by the operator"}}
    mark = await w.upstream.mark()
    async with model(env, mode="2026-07-28") as m:
        legs = spy_on_calls(m)
        info(f"modern client without a callback declares {short(declared(m), 200)}")
        s = approval_required(env, await call(m, "dns_create_record", args), "a 2026-07-28 client without elicitation")
        ok(len(legs) == 1 and "inputRequests" not in legs[0]["result"], "...as a plain tool result, no input_required", legs)
        aid = s["approval_id"]
        info(f"`approval approve {aid}` printed {decided(w.operator.run('approval', 'approve', aid))}")
        ok(w.operator.state(aid) == "done", "`approval approve` (operator) carried it out: done", w.operator.state(aid))
        writes = await w.upstream.writes_since(mark)
        ok(len(writes) == 1 and writes[0]["method"] == "POST", "the upstream saw exactly one write", writes)
        done = structured(await call(m, "dns_create_record", args))
        ok(
            done.get("status") == "done" and done.get("decided_by") == "operator" and done.get("result", {}).get("name") == name,
            "the next identical call: done, decided by operator",
            short(done),
        )

    # Observation only: a 2025-11-25 client declaring elicitation in `initialize` (the server is
    # stateless and, by its own design note, gets the link in the result then).
    calls: list[Any] = []

    async def never(ctx: Any, params: Any) -> Any:
        calls.append(params)
        return mt.ElicitResult(action="cancel")

    args = {"record": {"type": "TXT", "name": f"legacy.shop.{a['zone_name']}", "content": "legacy client"}}
    async with model(env, mode="legacy", elicitation_callback=never) as m:
        s = structured(await call(m, "dns_create_record", args))
    info(
        f"a 2025-11-25 client that declared elicitation in initialize got status {s.get('status')!r} "
        f"{'with the link in the result' if s.get('approval_url') else ''}, {len(calls)} elicitation(s)"
    )
    if s.get("approval_id"):
        w.operator.run("approval", "deny", s["approval_id"])


async def run_checks(env: Env) -> int:
    import httpx2
    from playwright.async_api import async_playwright

    outcomes: list[tuple[str, bool, float, str]] = []

    async def one(label: str, body: Callable[[], Any]) -> None:
        print(f"== {label}", flush=True)
        started = time.monotonic()
        try:
            with anyio.fail_after(CHECK_S):
                await body()
            outcomes.append((label, True, time.monotonic() - started, ""))
            print(f"PASS {label} ({time.monotonic() - started:.1f} s)", flush=True)
        except BaseException as exc:  # noqa: BLE001 - each check reports, the next one runs
            if isinstance(exc, KeyboardInterrupt):
                raise
            why = describe(exc)
            outcomes.append((label, False, time.monotonic() - started, why))
            print(f"FAIL {label}: {why}", flush=True)
            if not isinstance(leaf(exc), (CheckFailed, TimeoutError)):
                traceback.print_exception(exc)
            with contextlib.suppress(Exception):
                recent = (await upstream.requests())[-6:]
                print(f"  last upstream requests: {short(recent, 1200)}", flush=True)

    async with httpx2.AsyncClient(timeout=HTTP_S) as http, httpx2.AsyncClient(timeout=HTTP_S, follow_redirects=False) as plain:
        upstream = Upstream(env, http)
        operator = Operator(env)
        async with async_playwright() as pw:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "oauth"))
            from e2e import CHROMIUM, CHROMIUM_ARGS  # tests/oauth: the same browser, the same flags

            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            from importlib.metadata import version

            print(
                f"INFO Chromium {browser.version}; mcp SDK {version('mcp')}; instance {env.base}/mcp, "
                f"connector door {env.connector}",
                flush=True,
            )
            approver, member = Person(browser, env.approver, env.connector), Person(browser, env.member, env.connector)
            w = World(env, upstream, operator, approver, member, plain)

            async def setup() -> None:
                ok(not await upstream.all_writes(), "no upstream write before the checks", await upstream.all_writes())
                for p in (approver, member):
                    await p.open()
                    await p.register()
                # The approver signs in again through the first approval link they open.
                await approver.context.clear_cookies()
                info("cleared the approver's cookies: the first approval link must ask for the passkey")

            checks: list[tuple[str, Callable[[], Any]]] = [
                ("1 adversarial model: nothing runs, the approval stays pending", lambda: check_adversarial(w)),
                *(
                    (f"2 happy path {case.tool}", lambda case=case: check_happy(w, case))
                    for case in cases(env)
                ),
                ("2 operator CLI: webflow_unpublish_items approved with `approval approve`", lambda: check_operator_unpublish(w)),
                ("3 member: sees the page, cannot decide (403), nothing runs", lambda: check_member(w)),
                ("4 elicitation: the link by URL-mode elicitation; without it, in the result", lambda: check_elicitation(w)),
            ]
            print("== setup: an approver and a member register passkeys from their invites", flush=True)
            try:
                with anyio.fail_after(CHECK_S):
                    await setup()
            except Exception as exc:  # noqa: BLE001 - then every check fails, saying why
                why = f"setup failed: {describe(exc)}"
                print(f"  {why}", flush=True)
                outcomes.extend((label, False, 0.0, why) for label, _ in checks)
                for label, _ in checks:
                    print(f"FAIL {label}: {why}", flush=True)
            else:
                for label, body in checks:
                    await one(label, body)
            await browser.close()

    print("== summary", flush=True)
    for label, passed, secs, why in outcomes:
        print(f"   {'pass' if passed else 'FAIL'} {label} ({secs:.1f} s){'' if passed else ': ' + why}", flush=True)
    failed = [o for o in outcomes if not o[1]]
    print(f"approvals e2e: {len(outcomes) - len(failed)} of {len(outcomes)} checks passed", flush=True)
    return 1 if failed else 0


def leaf(exc: BaseException) -> BaseException:
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    for inner in getattr(exc, "exceptions", ()):
        if isinstance(leaf(inner), CheckFailed):
            return leaf(inner)
    return exc


def describe(exc: BaseException) -> str:
    found = leaf(exc)
    if isinstance(found, CheckFailed):
        return str(found)
    if isinstance(found, TimeoutError):
        return f"timed out (steps {STEP_S} s, check {CHECK_S} s)"
    return f"{type(found).__name__}: {found}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    px = sub.add_parser("proxy", help="a recording reverse proxy to the sandbox")
    px.add_argument("--port", type=int, required=True)
    px.add_argument("--to", required=True)
    px.add_argument("--log", type=Path, required=True)
    chk = sub.add_parser("check", help="run the checks")
    for name in ("--base", "--connector", "--cli", "--admin-url", "--proxy"):
        chk.add_argument(name, required=True)
    chk.add_argument("--token-file", type=Path, required=True)
    chk.add_argument("--sandbox", type=Path, required=True, help="the sandbox's ready line (base_url, fixture)")
    chk.add_argument("--approver", nargs=3, required=True, metavar=("NAME", "ID", "INVITE"))
    chk.add_argument("--member", nargs=3, required=True, metavar=("NAME", "ID", "INVITE"))
    args = parser.parse_args()
    if args.command == "proxy":
        return run_proxy(args.port, args.to, args.log)
    ready = json.loads(args.sandbox.read_text().splitlines()[0])
    env = Env(
        base=args.base.rstrip("/"),
        connector=connector_origin(args.connector),
        token=args.token_file.read_text().strip(),
        cli=args.cli,
        admin_url=args.admin_url,
        proxy=args.proxy.rstrip("/"),
        sandbox_url=ready["base_url"].rstrip("/"),
        acme=next(o for o in ready["fixture"]["owners"] if o["owner"] == "acme"),
        approver=PersonArgs(*args.approver),
        member=PersonArgs(*args.member),
    )
    return asyncio.run(run_checks(env))


if __name__ == "__main__":
    sys.exit(main())
