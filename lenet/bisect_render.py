"""A bisection's finding as JSON and as Markdown a pull-request comment can take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lenet.bisect import BisectResult, Measurement


def bisect_json(
    result: BisectResult, measured: Mapping[str, Measurement], good: str, subject: str, seconds: float
) -> dict[str, Any]:
    """Everything the finding rests on: the step, each probe, the culprit with its parent's and its own values."""
    culprit = result.culprit
    evidence = []
    if culprit and result.parent:
        before, after = measured.get(result.parent), measured.get(culprit)
        for name in result.step:
            b = before.value(name) if before else None
            a = after.value(name) if after else None
            evidence.append(
                {
                    "benchmark": name,
                    "parent": b,
                    "culprit": a,
                    "change_percent": round((a / b - 1) * 100, 3) if a and b else None,
                }
            )
    metric = next(iter(measured.values())).metric if measured else None
    return {
        "good": good,
        "bad": result.commits[-1] if result.commits else None,
        "commits_in_range": len(result.commits),
        "metric": metric,
        "step": {name: round((ratio - 1) * 100, 3) for name, ratio in result.step.items()},
        "probes": [
            {"commit": p.commit, "verdict": p.verdict, "position": p.position, "reason": p.reason}
            for p in result.probes
        ],
        "commits_measured": sum(1 for m in measured.values() if not m.reused),
        "commits_reused": sum(1 for m in measured.values() if m.reused),
        "culprit": culprit,
        "subject": subject,
        "parent": result.parent,
        "evidence": evidence,
        "notes": list(result.notes),
        "seconds": round(seconds, 1),
    }


def bisect_markdown(document: Mapping[str, Any]) -> str:
    lines = ["## Bisect"]
    culprit = document["culprit"]
    if culprit:
        size = ", ".join(
            f"{e['benchmark']} {e['change_percent']:+.2f}%" for e in document["evidence"] if e["change_percent"]
        )
        lines.append(f"First bad commit: `{culprit[:12]}` {document['subject']} ({size}; by {document['metric']}).")
    elif not document["step"]:
        lines.append("Good and bad do not differ: nothing to bisect.")
    else:
        lines.append("No single commit could be named.")
    lines.append(
        f"{document['commits_in_range']} commits after good `{document['good'][:12]}`; "
        f"{len(document['probes'])} probed, {document['commits_measured']} commits measured, "
        f"{document['commits_reused']} reused from saved runs, {document['seconds']:.0f} s."
    )
    if document["evidence"]:
        lines += [
            "",
            f"| benchmark | parent `{document['parent'][:12]}` | culprit | change |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {e['benchmark']} | {e['parent']:.6g} | {e['culprit']:.6g} | {e['change_percent']:+.2f}% |"
            for e in document["evidence"]
            if e["parent"] and e["culprit"]
        ]
    lines += ["", "| probe | verdict | position on the step |", "| --- | --- | --- |"]
    for probe in document["probes"]:
        position = f"{probe['position']:.0%}" if probe["position"] is not None else probe["reason"]
        lines.append(f"| `{probe['commit'][:12]}` | {probe['verdict']} | {position} |")
    lines += [f"- {note}" for note in document["notes"]]
    return "\n".join(lines) + "\n"
