#!/usr/bin/env python3
"""Summarises the conformance runs and compares their failures with baseline.txt.

For each run (<server>-<revision>/server-<scenario>-<timestamp>/checks.json, written by the suite's
`-o`), prints scenarios and checks passed/failed. The authorization server runs
(`--authorization-servers`: <server>-authorization/authorization-server-<scenario>-<timestamp>/
checks.json, the suite's `authorization` command against a server's connector door) are judged
the same way, as the pseudo-revision `authorization` (baseline: `rev=authorization`); there a
SKIPPED check is a failure too, since the run gives the suite everything its scenarios ask for. Exit status 1 if any check FAILED without a
baseline entry, or a scenario the requirement set runs left no results; baseline entries that no
longer match anything are reported (so the baseline can be trimmed) but do not fail the run.
WARNING checks (SHOULD-level) never fail the run: unbaselined ones are listed.

Baseline lines:  <scenario>[:<check-id>] [on=<server>,…] [rev=<revision>,…] | <reason>
A bare scenario excuses every failing check in it; `scenario:check-id` excuses only that check
(every occurrence of the id). `on=` / `rev=` narrow an entry to some runs. The reason is required.
"""

import argparse
import glob
import json
import os
import re
import sys

FAILED, WARNED = "FAILURE", "WARNING"


class Entry:
    def __init__(self, lineno, scenario, check, servers, revisions, reason):
        self.lineno, self.scenario, self.check = lineno, scenario, check
        self.servers, self.revisions, self.reason = servers, revisions, reason
        self.applies_somewhere = False  # its scenario ran in a run it applies to
        self.used = False  # it excused a failing or warning check

    def __str__(self):
        return self.scenario + (":" + self.check if self.check else "")

    def applies(self, server, revision, scenario):
        return (
            scenario == self.scenario
            and (not self.servers or server in self.servers)
            and (not self.revisions or revision in self.revisions)
        )


def load_baseline(path):
    entries, errors = [], []
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            selector, sep, reason = line.partition("|")
            reason = reason.strip()
            words = selector.split()
            if not sep or not reason or not words:
                errors.append("%s:%d: expected `<scenario>[:<check>] [on=…] [rev=…] | <reason>`" % (path, lineno))
                continue
            scenario, _, check = words[0].partition(":")
            servers, revisions = set(), set()
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "on" and value:
                    servers |= set(value.split(","))
                elif key == "rev" and value:
                    revisions |= set(value.split(","))
                else:
                    errors.append("%s:%d: unknown qualifier `%s`" % (path, lineno, word))
            entries.append(Entry(lineno, scenario, check or None, servers, revisions, reason))
    return entries, errors


def server_scenarios(requirements_file):
    """(scored, not_scored) server scenarios of a requirement set, read from the suite's own YAML:
    `server:` is a list of names, `not_scored:` a list of {scenario, leg, reason, …} maps."""
    scored, items, section = [], [], None
    with open(requirements_file) as f:
        for raw in f:
            line = raw.split("#", 1)[0].rstrip()
            if not line:
                continue
            if not line.startswith(" "):
                section = line.rstrip(":")
                continue
            if section == "server":
                m = re.match(r"\s*-\s*(\S+)$", line)
                if m:
                    scored.append(m.group(1))
            elif section == "not_scored":
                m = re.match(r"\s*(-\s*)?(\w+):\s*(.*)$", line)
                if m:
                    if m.group(1) or not items:
                        items.append({})
                    items[-1][m.group(2)] = m.group(3).strip()
    not_scored = [i["scenario"] for i in items if i.get("leg") == "server" and i["scenario"] not in scored]
    if not scored:
        sys.exit("report: no server scenarios found in " + requirements_file)
    return scored, not_scored


AUTHORIZATION = "authorization"
# The suite's authorization server scenarios (`conformance list --authorization`).
AUTHORIZATION_SCENARIOS = ["authorization-server-metadata-endpoint", "authorization-code-grant"]


def load_run(run_dir, kind="server"):
    """scenario -> list of checks, from the newest result directory of each scenario."""
    results = {}
    for d in sorted(glob.glob(os.path.join(run_dir, kind + "-*"))):
        m = re.match(kind + r"-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$", os.path.basename(d))
        path = os.path.join(d, "checks.json")
        if m and os.path.isfile(path):
            with open(path) as f:
                results[m.group(1)] = json.load(f)
    return results


def clip(text, n=220):
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", required=True)
    p.add_argument("--requirements-dir", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--servers", nargs="+", required=True)
    p.add_argument("--revisions", nargs="+", required=True)
    p.add_argument("--authorization-servers", nargs="*", default=[])
    args = p.parse_args()

    entries, errors = load_baseline(args.baseline)
    for e in errors:
        print("baseline: " + e)
    unexpected = []  # (run, scenario, check id, status, message)
    warnings = {}  # (scenario, check, message) -> [runs]
    summaries = []

    runs = [(server, revision) for server in args.servers for revision in args.revisions]
    runs += [(server, AUTHORIZATION) for server in args.authorization_servers]
    for server, revision in runs:
        run = "%s %s" % (server, revision)
        if revision == AUTHORIZATION:
            scored, not_scored = AUTHORIZATION_SCENARIOS, []
            results = load_run(os.path.join(args.results, "%s-%s" % (server, revision)), "authorization-server")
        else:
            scored, not_scored = server_scenarios(os.path.join(args.requirements_dir, revision + ".yaml"))
            results = load_run(os.path.join(args.results, "%s-%s" % (server, revision)))
        counts = dict(sc_pass=0, sc_fail=0, scored_pass=0, ck_pass=0, ck_fail=0, ck_base=0, warn=0)
        for scenario in scored + not_scored:
            checks = results.get(scenario)
            if checks is None:
                unexpected.append((run, scenario, "-", "MISSING", "the suite left no checks.json (crashed or timed out?)"))
                counts["sc_fail"] += 1
                continue
            applicable = [e for e in entries if e.applies(server, revision, scenario)]
            for e in applicable:
                e.applies_somewhere = True
            scenario_failed = False
            for c in checks:
                status, cid = c.get("status"), c.get("id", "?")
                if status == "SUCCESS":
                    counts["ck_pass"] += 1
                    continue
                if status == "SKIPPED" and revision == AUTHORIZATION:
                    status = FAILED  # the run gave the suite all it needs: nothing may be skipped
                if status not in (FAILED, WARNED):
                    continue  # SKIPPED / INFO
                excused = [e for e in applicable if e.check is None or e.check == cid]
                for e in excused:
                    e.used = True
                if status == WARNED:
                    counts["warn"] += 1
                    if not excused:
                        warnings.setdefault((scenario, cid, clip(c.get("errorMessage"))), []).append(run)
                    continue
                counts["ck_fail"] += 1
                scenario_failed = True
                if excused:
                    counts["ck_base"] += 1
                else:
                    unexpected.append((run, scenario, cid, status, clip(c.get("errorMessage"), 400)))
            if scenario_failed:
                counts["sc_fail"] += 1
            else:
                counts["sc_pass"] += 1
                counts["scored_pass"] += scenario in scored
        total = len(scored) + len(not_scored)
        new = counts["ck_fail"] - counts["ck_base"]
        summaries.append(
            "%-8s %s: scenarios %d/%d passed, %d failed (required: %d/%d passed); "
            "checks %d passed, %d failed (%d baselined, %d new), %d warnings"
            % (server, revision, counts["sc_pass"], total, counts["sc_fail"], counts["scored_pass"],
               len(scored), counts["ck_pass"], counts["ck_fail"], counts["ck_base"], new, counts["warn"])
        )

    print("== conformance summary")
    for line in summaries:
        print("  " + line)
    if warnings:
        print("== warnings (SHOULD-level, not in the baseline; they do not fail the run)")
        for (scenario, cid, message), runs in sorted(warnings.items()):
            print("  %s:%s [%s] %s" % (scenario, cid, "; ".join(runs), message))
    stale = [e for e in entries if not e.used]
    if stale:
        print("== baseline entries that matched nothing (fixed, or their check no longer runs): trim them")
        for e in stale:
            why = "" if e.applies_somewhere else " (its scenario did not run)"
            print("  %s:%d %s%s" % (os.path.basename(args.baseline), e.lineno, e, why))
    if unexpected:
        print("== FAILURES NOT IN THE BASELINE")
        for run, scenario, cid, status, message in unexpected:
            print("  [%s] %s:%s %s: %s" % (run, scenario, cid, status, message))
    return 1 if unexpected or errors else 0


if __name__ == "__main__":
    sys.exit(main())
