#!/usr/bin/env python3
"""The conformance suite's `authorization` command against a server's connector door, with a
person in a real headless Chromium (tests/oauth/e2e.py's Person: Playwright, a virtual passkey).

    authorization.py --suite BIN --issuer ORIGIN --resource URL --person NAME INVITE
                     --out DIR --log FILE

ORIGIN is the connector door's origin (the authorization server's issuer), URL the connector URL
(<origin>/mcp, the RFC 8707 resource). The suite's two authorization server scenarios:
`authorization-server-metadata-endpoint` reads <origin>/.well-known/oauth-authorization-server;
`authorization-code-grant` needs a registered client with the redirect URI
http://127.0.0.1:<port>/callback (where the suite listens), prints the authorization URL and
waits for a browser to bring the code back. So this script registers such a client at the
server's registration endpoint (dynamic registration, token_endpoint_auth_method none), has the
person register a passkey from INVITE, runs `BIN authorization --url ORIGIN --client-id <id>
--resource URL -p <port> -o DIR`, and when the suite prints the URL sends the person's browser
there: consent, then the redirect to the suite's callback, which exchanges the code.

The suite's exit status is not the verdict (report.py compares its checks.json with the baseline);
this script exits 1 only if the browser side failed (the suite is then stopped, not left waiting
its five minutes), 0 otherwise. The suite's output goes to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "oauth"))
from e2e import CHROMIUM, CHROMIUM_ARGS, STEP_S, CheckFailed, Person, free_port  # noqa: E402

SUITE_S = 90  # the whole suite run (it waits up to five minutes for the callback on its own)


async def consent(person: Person, url: str, callback: str) -> None:
    page = person.page
    response = await page.goto(url)
    if not response or response.status != 200:
        raise CheckFailed(f"GET the suite's authorization URL: HTTP {response.status if response else None}; {await person.describe_page()}")
    allow = page.locator('button[name="decision"][value="allow"]')
    try:
        await allow.wait_for()
        async with page.expect_navigation(url=lambda u: u.startswith(callback), timeout=STEP_S * 1000):
            await allow.click()
    except Exception as exc:  # noqa: BLE001 - a Playwright timeout: say what the page shows
        raise CheckFailed(f"consent did not lead to the suite's callback {callback}: {exc}; {await person.describe_page()}") from None
    print(f"authorization.py: consented; the browser is at {page.url.split('?')[0]}", flush=True)


async def run(args: argparse.Namespace) -> int:
    issuer = args.issuer.rstrip("/")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    async with httpx2.AsyncClient(timeout=15) as http:
        asm = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
        r = await http.post(
            asm["registration_endpoint"],
            json={
                "client_name": "MCP conformance suite (authorization)",
                "redirect_uris": [callback],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        if r.status_code != 201:
            raise CheckFailed(f"registering the suite's client at {asm['registration_endpoint']}: HTTP {r.status_code} {r.text[:300]}")
        client_id = r.json()["client_id"]
    print(f"authorization.py: registered client {client_id} with redirect URI {callback}", flush=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        person = Person(browser, args.person[0], "[conformance]")
        await person.open()
        suite = None
        try:
            await person.register_passkey(args.person[1], issuer)
            suite = await asyncio.create_subprocess_exec(
                args.suite, "authorization", "--url", issuer, "--client-id", client_id, "--resource", args.resource,
                "-p", str(port), "-o", str(args.out),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env=os.environ.copy(),
            )
            deadline = time.monotonic() + SUITE_S
            authorize = re.compile(re.escape(asm["authorization_endpoint"]) + r"\?\S+$")
            consented = False
            with args.log.open("w") as log:
                assert suite.stdout is not None
                while True:
                    try:
                        line = await asyncio.wait_for(suite.stdout.readline(), max(0.1, deadline - time.monotonic()))
                    except TimeoutError:
                        raise CheckFailed(f"the suite did not finish within {SUITE_S} s (log: {args.log})") from None
                    if not line:
                        break
                    text = line.decode(errors="replace").rstrip("\n")
                    log.write(text + "\n")
                    log.flush()
                    if not consented and authorize.match(text.strip()):
                        print("authorization.py: the suite printed its authorization URL; the person consents", flush=True)
                        await consent(person, text.strip(), callback)
                        consented = True
            code = await suite.wait()
            print(f"authorization.py: the suite exited {code}{'' if consented else '; it never asked for a browser'}", flush=True)
            return 0
        finally:
            if suite is not None and suite.returncode is None:
                suite.kill()
                await suite.wait()
            await person.close()
            await browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", required=True, help="the suite's `conformance` binary")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--resource", required=True)
    parser.add_argument("--person", nargs=2, required=True, metavar=("NAME", "INVITE"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        found: Any = exc
        while len(getattr(found, "exceptions", ())) == 1:
            found = found.exceptions[0]
        print(f"authorization.py: FAIL {type(found).__name__}: {found}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
