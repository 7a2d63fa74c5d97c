#!/usr/bin/env python3
"""An MCP client nobody on the team wrote: the official MCP Python SDK (PyPI `mcp`) talking to
a running shared server over Streamable HTTP, checking the tenant boundary from the outside.

    python_client.py --url http://127.0.0.1:8787/mcp --token "$ACME_TOKEN" \
        --tenant acme --foreign-site <another tenant's Webflow site id>

Every argument can also come from the environment (MCP_URL, MCP_TOKEN, MCP_TENANT, FOREIGN_SITE).
Prints one PASS line per check; exits 1 on the first failure.

Written against SDK 2.x (`streamable_http_client` + an `httpx2` client); also runs on late 1.x
releases, which have the same entry point with an `httpx` client. Results are compared in their
wire (camelCase) form so the check does not depend on the SDK's field naming.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp
import mcp.client.streamable_http as streamable_http
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

# The HTTP library the installed SDK's transport is built on (httpx2 in 2.x, httpx in 1.x).
httpx = getattr(streamable_http, "httpx2", None) or streamable_http.httpx

try:
    from importlib.metadata import version

    SDK_VERSION = version("mcp")
except Exception:  # pragma: no cover - metadata is always there for a pip install
    SDK_VERSION = "unknown"

TIMEOUT_S = 30


class CheckFailed(Exception):
    pass


def check(condition: bool, what: str, detail: Any = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}: {detail}" if detail != "" else what)
    print(f"PASS {what}", flush=True)


def wire(result: Any) -> dict[str, Any]:
    """A result as it was on the wire (camelCase keys), whichever SDK major version parsed it."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def payload(result: dict[str, Any]) -> Any:
    """A tool result's structured content, or its first text block parsed as JSON."""
    if result.get("structuredContent") is not None:
        return result["structuredContent"]
    return json.loads(text_of(result))


def text_of(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


@asynccontextmanager
async def connect(url: str, token: str, statuses: list[tuple[int, str]]):
    """An initialized ClientSession; every HTTP status (and WWW-Authenticate) is recorded."""

    async def record(response: Any) -> None:
        statuses.append((response.status_code, response.headers.get("www-authenticate", "")))

    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(TIMEOUT_S),
        event_hooks={"response": [record]},
    )
    async with client, streamable_http_client(url, http_client=client) as streams:
        # 2.x yields (read, write); 1.x adds a session-id getter.
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            with anyio.fail_after(TIMEOUT_S):
                init = await session.initialize()
            yield session, init


async def run(args: argparse.Namespace) -> None:
    print(f"mcp Python SDK {SDK_VERSION} -> {args.url} as {args.tenant}", flush=True)
    statuses: list[tuple[int, str]] = []
    async with connect(args.url, args.token, statuses) as (session, init):
        info = wire(init)
        check(
            bool(info.get("serverInfo", {}).get("name")),
            f"initialize (server {info.get('serverInfo', {}).get('name')}, protocol {info.get('protocolVersion')})",
            info,
        )

        with anyio.fail_after(TIMEOUT_S):
            tools = await session.list_tools()
        names = {t.name for t in tools.tools}
        check({"whoami", "webflow_list_items"} <= names, f"tools/list ({len(names)} tools)", sorted(names))

        with anyio.fail_after(TIMEOUT_S):
            me = wire(await session.call_tool("whoami", {}))
        check(not me.get("isError"), "whoami is not an error", text_of(me))
        tenant = payload(me).get("tenant")
        check(tenant == args.tenant, f"whoami says tenant {tenant!r}", f"expected {args.tenant!r}")

        with anyio.fail_after(TIMEOUT_S):
            sites_result = wire(await session.call_tool("webflow_list_sites", {}))
        check(not sites_result.get("isError"), "webflow_list_sites is not an error", text_of(sites_result))
        sites = payload(sites_result).get("sites", [])
        check(len(sites) == 1, "webflow_list_sites returns exactly one site", [s.get("id") for s in sites])
        marker = f"owner:{args.tenant})"
        check(
            marker in sites[0].get("displayName", ""),
            f"the site is the tenant's own ({sites[0].get('displayName')!r})",
            f"no {marker!r} in it",
        )

        with anyio.fail_after(TIMEOUT_S):
            foreign = wire(await session.call_tool("webflow_get_site", {"site_id": args.foreign_site}))
        message = text_of(foreign)
        check(foreign.get("isError") is True, "webflow_get_site on another tenant's site is a tool error", foreign)
        check(
            "not one of this tenant's" in message and args.foreign_site in message,
            f"...saying so ({message!r})",
            message,
        )
        # The refusal must not carry the foreign site's data.
        check("structuredContent" not in foreign, "...and returns no site data", foreign)

    # A wrong token: the server answers HTTP 401 with a Bearer challenge and the SDK's initialize fails.
    statuses = []
    bad = args.token[:-4] + ("AAAA" if not args.token.endswith("AAAA") else "BBBB")
    failure: BaseException | None = None
    try:
        async with connect(args.url, bad, statuses):
            pass
    except BaseException as exc:  # an MCPError, or an ExceptionGroup from the transport's task group
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        failure = innermost(exc)
    check(failure is not None, "initialize with a wrong token fails", "it succeeded")
    check(
        any(status == 401 and challenge.lower().startswith("bearer") for status, challenge in statuses),
        f"...with HTTP 401 and WWW-Authenticate: Bearer ({type(failure).__name__}: {failure})",
        statuses,
    )

    # The SDK's high-level client (2.x) in its default mode probes `server/discover` first and
    # falls back to the initialize handshake; it must end up working against this server too.
    if hasattr(mcp, "Client"):
        transport_client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {args.token}"}, timeout=httpx.Timeout(TIMEOUT_S)
        )
        async with transport_client:
            with anyio.fail_after(TIMEOUT_S):
                async with mcp.Client(streamable_http_client(args.url, http_client=transport_client)) as client:
                    protocol = getattr(client.session, "protocol_version", "?")
                    me = wire(await client.call_tool("whoami", {}))
        check(
            payload(me).get("tenant") == args.tenant,
            f"mcp.Client (default mode 'auto', negotiated {protocol}) calls whoami",
            me,
        )
    else:
        print("SKIP mcp.Client (not in this SDK version)", flush=True)


def check_failure(exc: BaseException) -> CheckFailed | None:
    """The CheckFailed inside `exc`, which the SDK's task groups may have wrapped in groups."""
    if isinstance(exc, CheckFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if (found := check_failure(inner)) is not None:
            return found
    return None


def innermost(exc: BaseException) -> BaseException:
    """Unwraps single-member exception groups (the SDK's task groups wrap transport errors)."""
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MCP_URL"))
    parser.add_argument("--token", default=os.environ.get("MCP_TOKEN"))
    parser.add_argument("--tenant", default=os.environ.get("MCP_TENANT"))
    parser.add_argument("--foreign-site", default=os.environ.get("FOREIGN_SITE"))
    args = parser.parse_args()
    missing = [k for k in ("url", "token", "tenant", "foreign_site") if not getattr(args, k)]
    if missing:
        parser.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    try:
        anyio.run(run, args)
    except BaseException as exc:  # noqa: BLE001 - report any failure, then exit non-zero
        if isinstance(exc, KeyboardInterrupt):
            raise
        failed = check_failure(exc)
        if failed is None:
            raise  # an unexpected error: let Python print the traceback (exit status 1)
        print(f"FAIL {failed}", file=sys.stderr, flush=True)
        return 1
    print("external client: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
