#!/usr/bin/env python3
"""mcp-remote's OAuth flow end to end: the bridge Claude Desktop runs (`npx mcp-remote <url>`),
driven over stdio by the official MCP Python SDK's stdio client, against a server's connector
door, with the person in a real headless Chromium holding a passkey (tests/oauth/e2e.py's Person).

    mcp_remote.py --mcp-remote JS --node NODE --work DIR --connector URL --static URL --other URL
                  --tenant T --person NAME ID INVITE

JS is mcp-remote's entry point (node_modules/mcp-remote/dist/proxy.js, what `npx mcp-remote`
runs), NODE the node binary. CONNECTOR is the connector URL (<origin>/mcp), STATIC the same
server's static door (<public URL>/mcp), OTHER another server's connector URL; TENANT, NAME, ID
and INVITE the invited person as in e2e.py.

How mcp-remote is made to use the test's browser (checked in its source, 0.15.1): it opens the
authorization URL with the `open` npm package, which on Linux runs its bundled `xdg-open`; with
no desktop session and no display, xdg-open runs `$BROWSER <url>`. BROWSER is a two-line script
that appends the URL to a file this process watches and exits 0, so mcp-remote reports "Browser
opened automatically" and waits for its callback; this process sends the person's Chromium to
the URL, the person consents, and Chromium follows the redirect to mcp-remote's own callback
server (http://localhost:<port>/oauth/callback), which ends the flow. mcp-remote keeps its state
in MCP_REMOTE_CONFIG_DIR (default ~/.mcp-auth): a directory under DIR, and HOME is another, so a
developer's own ~/.mcp-auth is never read or written.

Checks: the URL mcp-remote opens is <origin>/authorize with PKCE S256, resource=CONNECTOR and
its loopback redirect URI; consent leads to mcp-remote's callback page; initialize, tools/list
(whoami among the tools) and whoami (tenant, person, mcp-remote's registered client) succeed
through mcp-remote; its tokens are in MCP_REMOTE_CONFIG_DIR and nothing in HOME; the access token
it holds is refused at STATIC and at OTHER; a second mcp-remote with the same state connects
without opening a browser again.

Prints PASS/INFO lines like e2e.py; on failure FAIL with the reason and mcp-remote's stderr tail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import (  # noqa: E402 - tests/oauth/e2e.py: the same browser, person and checks
    CHROMIUM,
    CHROMIUM_ARGS,
    HTTP_S,
    INITIALIZE,
    STEP_S,
    CheckFailed,
    Person,
    check,
    check_failure,
    describe,
    free_port,
    info,
    mcp_post_headers,
    origin_of,
    payload,
    wire,
)

RUN_S = 120  # one mcp-remote session, OAuth flow included

OPENER = """#!/bin/sh
# mcp-remote's "browser" (BROWSER): hands the URL to mcp_remote.py, which drives Chromium there.
printf '%s\\n' "$1" >>"$MCP_REMOTE_E2E_OPENED"
"""


class Setup:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.opened = self.work / "opened-urls.txt"
        self.config_dir = self.work / "mcp-auth"
        self.home = self.work / "home"
        self.opener = self.work / "open-browser"
        self.errlog = self.work / "mcp-remote.stderr.log"
        self.callback_port = free_port()
        self.callback = f"http://localhost:{self.callback_port}/oauth/callback"
        self.origin = origin_of(args.connector)
        self.home.mkdir(parents=True, exist_ok=True)
        self.opener.write_text(OPENER)
        self.opener.chmod(0o700)
        self.opened.touch()

    def params(self) -> StdioServerParameters:
        node_dir = str(Path(self.args.node).resolve().parent)
        return StdioServerParameters(
            command=self.args.node,
            # What `npx mcp-remote <url> <callback port>` runs; --debug logs into the config dir.
            args=[
                self.args.mcp_remote,
                self.args.connector,
                str(self.callback_port),
                "--auth-timeout",
                str(RUN_S),
                "--debug",
            ],
            env={
                "PATH": f"{node_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(self.home),
                "MCP_REMOTE_CONFIG_DIR": str(self.config_dir),
                "BROWSER": str(self.opener),
                "MCP_REMOTE_E2E_OPENED": str(self.opened),
            },
        )

    def urls_opened(self) -> list[str]:
        return [line for line in self.opened.read_text().splitlines() if line.strip()]

    def state_files(self, suffix: str) -> list[Path]:
        return sorted(self.config_dir.rglob(f"*{suffix}"))

    def state_json(self, suffix: str) -> dict[str, Any]:
        files = self.state_files(suffix)
        if len(files) != 1:
            raise CheckFailed(f"expected one *{suffix} in {self.config_dir}, found {[str(f) for f in files]}")
        return json.loads(files[0].read_text())

    def stderr_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.errlog.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no stderr)"


async def drive_browser(s: Setup, person: Person, done: dict[str, Any], finished: anyio.Event) -> None:
    """Waits for mcp-remote to open its authorization URL, then consents in the person's browser."""
    try:
        await consent_in_browser(s, person, done)
    finally:
        finished.set()


async def consent_in_browser(s: Setup, person: Person, done: dict[str, Any]) -> None:
    deadline = time.monotonic() + RUN_S
    while not s.urls_opened():
        if time.monotonic() > deadline:
            raise CheckFailed(f"mcp-remote opened no browser within {RUN_S} s; its stderr:\n{s.stderr_tail()}")
        await asyncio.sleep(0.1)
    url = s.urls_opened()[0]
    query = parse_qs(urlparse(url).query)
    one = {k: v[0] for k, v in query.items() if len(v) == 1}
    check(
        url.startswith(f"{s.origin}/authorize?"),
        f"mcp-remote opened the browser (BROWSER) at {s.origin}/authorize",
        url,
    )
    check(
        one.get("response_type") == "code"
        and one.get("code_challenge_method") == "S256"
        and one.get("code_challenge")
        and one.get("redirect_uri") == s.callback
        and one.get("resource") == s.args.connector,
        f"...with PKCE S256, redirect_uri {s.callback} and resource={s.args.connector}",
        {k: v for k, v in one.items() if k != "code_challenge"},
    )
    page = person.page
    response = await page.goto(url)
    check(response and response.status == 200, "GET /authorize in the person's browser: 200", await person.describe_page())
    allow = page.locator('button[name="decision"][value="allow"]')
    try:
        await allow.wait_for()
    except Exception as exc:  # noqa: BLE001 - a Playwright timeout: say what the page shows
        raise CheckFailed(f"no consent page: {exc}; {await person.describe_page()}") from None
    consent = (await page.inner_text("body")).replace("\n", " ")
    info(f"consent page: {consent[:200]!r}")
    try:
        async with page.expect_navigation(url=lambda u: u.startswith(s.callback), timeout=STEP_S * 1000) as nav:
            await allow.click()
        landed = await nav.value
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"clicking allow did not lead to {s.callback}: {exc}; {await person.describe_page()}") from None
    await page.wait_for_load_state()
    text = (await page.inner_text("body")).strip().replace("\n", " ")
    check(
        landed is not None and landed.status == 200 and "code=" in page.url and "error" not in parse_qs(urlparse(page.url).query),
        f"consent redirects to mcp-remote's callback with a code; its page says {text[:100]!r}",
        f"HTTP {landed.status if landed else None} at {page.url}: {text[:300]!r}",
    )
    done["url"] = url


async def session_through_mcp_remote(s: Setup, person: Person | None, what: str) -> dict[str, Any]:
    """One mcp-remote process: initialize, tools/list, whoami (the person consents if it asks)."""
    done: dict[str, Any] = {}
    finished = anyio.Event()
    out: dict[str, Any] = {}
    with s.errlog.open("a") as errlog:
        errlog.write(f"\n===== {what}\n")
        errlog.flush()
        async with stdio_client(s.params(), errlog=errlog) as streams:
            async with ClientSession(streams[0], streams[1]) as session, anyio.create_task_group() as tg:
                if person is not None:
                    tg.start_soon(drive_browser, s, person, done, finished)
                with anyio.fail_after(RUN_S):
                    init = wire(await session.initialize())
                server = init.get("serverInfo", {})
                check(server.get("name"), f"{what}: initialize through mcp-remote (server {server.get('name')}, protocol {init.get('protocolVersion')})", init)
                with anyio.fail_after(HTTP_S):
                    tools = await session.list_tools()
                names = sorted(t.name for t in tools.tools)
                check("whoami" in names, f"{what}: tools/list through mcp-remote ({len(names)} tools) includes whoami", names)
                with anyio.fail_after(HTTP_S):
                    me = wire(await session.call_tool("whoami", {}))
                check(not me.get("isError"), f"{what}: whoami through mcp-remote is not an error", me)
                out["whoami"] = payload(me)
                if person is not None:
                    # mcp-remote may finish before the browser has settled on its callback page.
                    with anyio.fail_after(STEP_S):
                        await finished.wait()
                    check(done.get("url"), f"{what}: the person consented in the browser", done)
                tg.cancel_scope.cancel()
    return out


async def run(args: argparse.Namespace) -> None:
    s = Setup(args)
    version = json.loads((Path(args.mcp_remote).resolve().parent.parent / "package.json").read_text())["version"]
    print(f"== mcp-remote {version} against {args.connector}: tenant {args.tenant}, person {args.person[0]}", flush=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        info(f"browser: Chromium {browser.version}; callback port {s.callback_port}; state in {s.config_dir}")
        person = Person(browser, args.person[0], "[mcp-remote]")
        await person.open()
        try:
            await person.register_passkey(args.person[2], s.origin)
            started = time.monotonic()
            first = await session_through_mcp_remote(s, person, "first start")
            info(f"first start, OAuth flow included: {time.monotonic() - started:.1f} s; whoami {json.dumps(first['whoami'], sort_keys=True)}")
        finally:
            await person.close()
            await browser.close()

    client = s.state_json("_client_info.json")
    tokens = s.state_json("_tokens.json")
    me = first["whoami"]
    p = me.get("person") or {}
    check(
        me.get("tenant") == args.tenant and p.get("name") == args.person[0] and p.get("id") == args.person[1]
        and p.get("client") == client.get("client_id"),
        f"whoami names tenant {args.tenant!r}, person {args.person[0]!r} ({args.person[1]}) and mcp-remote's "
        f"registered client {client.get('client_id')}",
        json.dumps(me, sort_keys=True),
    )
    check(
        tokens.get("access_token") and tokens.get("refresh_token"),
        f"mcp-remote keeps its tokens in MCP_REMOTE_CONFIG_DIR ({', '.join(f.name for f in s.state_files('.json'))})",
        tokens.keys(),
    )
    check(not (s.home / ".mcp-auth").exists(), "...and nothing in ~/.mcp-auth", list(s.home.rglob("*"))[:5])
    async with httpx2.AsyncClient(timeout=HTTP_S) as plain:
        for door, url in (("the static door", args.static), ("the other server's connector", args.other)):
            r = await plain.post(url, json=INITIALIZE, headers=mcp_post_headers(tokens["access_token"]))
            check(r.status_code == 401, f"mcp-remote's access token is refused at {door} {url} (HTTP {r.status_code})", r.text[:200])

    second = await session_through_mcp_remote(s, None, "second start, same state")
    check(len(s.urls_opened()) == 1, "...no browser opened again: mcp-remote reused its tokens", s.urls_opened())
    check(second["whoami"].get("person", {}).get("id") == args.person[1], "...as the same person", second["whoami"])


def main() -> int:
    logging.getLogger("mcp").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcp-remote", required=True, help="mcp-remote's dist/proxy.js")
    parser.add_argument("--node", required=True)
    parser.add_argument("--work", type=Path, required=True)
    for name in ("--connector", "--static", "--other", "--tenant"):
        parser.add_argument(name, required=True)
    parser.add_argument("--person", nargs=3, required=True, metavar=("NAME", "ID", "INVITE"))
    args = parser.parse_args()
    for name in ("connector", "static", "other"):
        if urlparse(getattr(args, name)).path != "/mcp":
            parser.error(f"--{name} must be an MCP URL <origin>/mcp")
    s_tail = ""
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - report any failure, then exit non-zero
        failed = check_failure(exc)
        print(f"FAIL {failed if failed is not None else describe(exc)}", file=sys.stderr, flush=True)
        try:
            s_tail = "\n".join((args.work / "mcp-remote.stderr.log").read_text(errors="replace").splitlines()[-30:])
        except OSError:
            pass
        if s_tail:
            print(f"last lines of mcp-remote's stderr:\n{s_tail}", file=sys.stderr, flush=True)
        if failed is None:
            import traceback

            traceback.print_exception(exc)
        return 1
    print("mcp-remote e2e: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
