#!/usr/bin/env python3
"""The official MCP Python SDK against the docker compose deployment, over HTTPS through Caddy,
trusting only Caddy's own local CA (verification stays on).

    client.py --ca root.crt --https-port 443 CHECK [CHECK ...]

Each CHECK is `url,token,tenant,tool` (tool: a read the tenant may call, e.g. webflow_list_sites
on the shared server, dns_list_records on an isolated instance), or `url,token,tenant,REFUSED`:
the token (revoked) must be turned away at the door, 401 to an MCP initialize. Host names under `.localhost`
are resolved to 127.0.0.1 here (the machine's resolver does not), so Host, SNI and the server's
public URL all keep the real name. Prints one PASS line per check; exits 1 on the first failure.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import sys
from typing import Any

import anyio
import mcp.client.streamable_http as streamable_http
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

httpx = getattr(streamable_http, "httpx2", None) or streamable_http.httpx
TIMEOUT_S = 30

_getaddrinfo = socket.getaddrinfo


def _resolve_localhost(host: Any, *args: Any, **kwargs: Any):
    """`*.localhost` is loopback (RFC 6761); glibc without systemd's resolver does not know it."""
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_localhost


class CheckFailed(Exception):
    pass


def check(condition: bool, what: str, detail: Any = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}: {detail}" if detail != "" else what)
    print(f"PASS {what}", flush=True)


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


async def run_refused(url: str, token: str, tls: ssl.SSLContext) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "compose-test", "version": "1"},
        },
    }
    async with httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), verify=tls) as client:
        answer = await client.post(
            url,
            json=initialize,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
            },
        )
    check(answer.status_code == 401, f"{url}: the revoked token is refused", answer.status_code)


async def run_check(spec: str, tls: ssl.SSLContext) -> None:
    url, token, tenant, tool = spec.split(",")
    if tool == "REFUSED":
        await run_refused(url, token, tls)
        return
    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(TIMEOUT_S),
        verify=tls,
    )
    async with client, streamable_http_client(url, http_client=client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            with anyio.fail_after(TIMEOUT_S):
                await session.initialize()
                me = wire(await session.call_tool("whoami", {}))
                data = wire(await session.call_tool(tool, {}))
    who = me.get("structuredContent") or {}
    check(not me.get("isError") and who.get("tenant") == tenant, f"{url}: whoami is {tenant}", me)
    body = json.dumps(data)
    check(not data.get("isError"), f"{url}: {tool} answers", text_of(data))
    check(f"owner:{tenant}" in body, f"{url}: {tool} shows {tenant}'s own data", body[:300])
    others = set(re.findall(r"owner:([a-z0-9-]+)", body)) - {tenant}
    check(not others, f"{url}: ...and nobody else's", others)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca", required=True, help="Caddy's local root certificate (PEM)")
    parser.add_argument("checks", nargs="+")
    args = parser.parse_args()
    tls = ssl.create_default_context(cafile=args.ca)
    try:
        for spec in args.checks:
            await run_check(spec, tls)
    except CheckFailed as failure:
        print(f"FAIL {failure}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
