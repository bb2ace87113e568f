"""How each promotion and mirror is doing, for the status page (``GET /api/rules``) and the
gauges an SLO alert reads (``ferry.rule.last_success``, ``ferry.rule.tags_behind``).

A pass writes what it saw (:func:`mirror_passed`, :func:`promoted`): the tags selected, those
already up to date, and the job made (or found in flight) for each other tag. Reading
(:func:`rule_states`) follows those jobs: a tag whose job succeeded is caught up, one whose job
failed is failing; a rule is ``ok`` when nothing is behind, and ``behindSince`` says since when
it has not been. A rule no pass has run yet is ``never``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared import telemetry
from shared.automation.passes import MirrorReport
from shared.automation.rules import Rules
from shared.azure_storage.records import JobRecord
from shared.azure_storage.rules import RulePass, RuleRecords

#: The jobs followed per rule when reading (a mirror selects at most 200 tags).
MAX_JOBS = 200
#: (job id) -> the job's record, or None
Lookup = Callable[[str], JobRecord | None]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _passed(records: RuleRecords, name: str, kind: str, fields: RulePass) -> None:
    """Write a pass: ``lastSuccess`` now when nothing is behind, else ``behindSince`` kept."""
    at = _now()
    before = records.get(name) or RulePass()
    jobs = fields.get("jobs", {})
    behind = bool(jobs) or bool(fields.get("deferred"))
    fields["kind"], fields["lastPass"] = kind, at
    last = fields["lastSuccess"] = before.get("lastSuccess") if behind else at
    fields["behindSince"] = (before.get("behindSince") or at) if behind else None
    records.put(name, fields)
    telemetry.rule_status(name, kind, datetime.fromisoformat(last).timestamp() if last else None, len(jobs))


def mirror_passed(records: RuleRecords, report: MirrorReport) -> None:
    jobs = {tag: job for tag, job in report.jobs.items() if tag not in report.unchanged}
    fields = RulePass(
        selected=len(report.selected), upToDate=len(report.unchanged), jobs=jobs, deferred=report.deferred
    )
    _passed(records, report.name, "mirror", fields)


def promoted(records: RuleRecords, rule: str, pushed: str, jobs: dict[str, str]) -> None:
    """A push the promotion ``rule`` acted on (``pushed`` names it), with its job per target."""
    _passed(records, rule, "promotion", RulePass(selected=len(jobs), upToDate=0, jobs=jobs, lastPush=pushed))


def _describe(rules: Rules) -> list[dict[str, Any]]:
    out = [{"name": p.name, "kind": "promotion", "source": f"{p.sourceRegistry}/{p.repository}",
            "target": f"{p.targetRegistry}/{p.targetRepository}"} for p in rules.promotions]  # fmt: skip
    out += [{"name": m.name, "kind": "mirror", "source": m.source,
             "target": f"{m.targetRegistry}/{m.targetRepository}"} for m in rules.mirrors]  # fmt: skip
    return out


def _follow(record: RulePass, lookup: Lookup) -> dict[str, Any]:
    """The rule's tags as its jobs now stand."""
    jobs: dict[str, str] = dict(list((record.get("jobs") or {}).items())[:MAX_JOBS])
    done, in_flight, failing, finished = 0, 0, [], []
    for tag, job_id in jobs.items():
        job = lookup(job_id)
        state = job.state if job else None
        if job and state == "succeeded":
            done += 1
            finished.append(job.finishedAt.isoformat() if job.finishedAt else "")
        elif job and state in ("failed", "cancelled"):
            code = job.error.code if job.error else job.state.upper()
            failing.append({"tag": tag, "job": job_id, "code": code})
        else:
            in_flight += 1
    behind = len(jobs) - done
    view: dict[str, Any] = {
        "selected": record.get("selected", 0), "upToDate": int(record.get("upToDate", 0)) + done,
        "behind": behind, "inFlight": in_flight, "failing": failing, "lastPass": record.get("lastPass"),
        "lastSuccess": record.get("lastSuccess"), "deferred": record.get("deferred"),
        "lastPush": record.get("lastPush"),
    }  # fmt: skip
    if behind == 0 and not record.get("deferred"):
        view["state"] = "ok"
        view["lastSuccess"] = max([view["lastSuccess"] or "", *finished]) or None
    else:
        view["behindSince"] = record.get("behindSince")
        view["state"] = "failing" if failing or record.get("deferred") else "behind"
    return view


def rule_states(rules: Rules, records: RuleRecords, lookup: Lookup) -> list[dict[str, Any]]:
    """Every rule of the file, with how it is doing (``never`` before its first pass)."""
    stored = records.all()
    out = []
    for rule in _describe(rules):
        record = stored.get(rule["name"])
        view = _follow(record, lookup) if record else {"state": "never"}
        out.append({**rule, **view})
        if record:
            last = view.get("lastSuccess")
            stamp = datetime.fromisoformat(last).timestamp() if last else None
            telemetry.rule_status(rule["name"], rule["kind"], stamp, int(view.get("behind", 0)))
    return out
