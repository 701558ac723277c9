"""`dynaquant submit`: check a batch file, submit it as one batch, poll with a progress bar, write results."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dynaquant.api import ServiceClient, ServiceError
from dynaquant.jobfile import JobLine
from dynaquant.progress import ProgressBar
from worker.contracts import TERMINAL

ITEM_FIELD = re.compile(r"^items\[(\d+)\]\.?(.*)$")
DONE = TERMINAL | {"expired"}


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C while polling: the batch was submitted and keeps running on the service."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id


@dataclass
class Outcome:
    """How a submitted batch ended: its id, each job's entry in input order, and whether polling gave up."""

    batch_id: str
    entries: list[dict[str, Any]]
    timed_out: bool = False

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        return counts


def plural(count: int, noun: str) -> str:
    """'1 job', '2 jobs'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def explain_rejection(exc: ServiceError, jobs: list[JobLine]) -> str:
    """The service's 400 for a batch, with `items[3].model` turned into the file's line number."""
    match = ITEM_FIELD.match(exc.field or "")
    if not match or int(match.group(1)) >= len(jobs):
        return f"the service refused the batch; nothing was submitted: {exc.message}"
    line = jobs[int(match.group(1))].line
    message = exc.message.removeprefix(f"{exc.field}: ")
    field = match.group(2)
    where = f"line {line}: {field} " if field else f"line {line}: "
    return f"{where}{message} (the service refused the batch; nothing was submitted)"


def poll(
    client: ServiceClient,
    batch_id: str,
    total: int,
    interval: float = 0.5,
    timeout: float | None = None,
    stream: TextIO | None = None,
) -> tuple[dict[str, Any], bool]:
    """Poll a batch until every job ends (or timeout seconds pass); returns its last state and whether it timed out."""
    bar = ProgressBar(total, stream) if stream is not None else None
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while True:
            batch = client.batch(batch_id)
            if bar:
                bar.update(batch.get("counts") or {})
            if batch.get("done"):
                return batch, False
            if deadline is not None and time.monotonic() >= deadline:
                return batch, True
            time.sleep(interval)
    finally:
        if bar:
            bar.close()


def collect(client: ServiceClient, batch: dict[str, Any], jobs: list[JobLine]) -> list[dict[str, Any]]:
    """One result entry per input line, in order; failed and cancelled jobs get their error from the job record."""
    entries = []
    for job_line, entry in zip(jobs, batch.get("jobs") or [], strict=False):
        out: dict[str, Any] = {"line": job_line.line, "job_id": entry["job_id"], "status": entry["status"]}
        if entry["status"] == "succeeded":
            out["result"] = entry.get("result")
        elif entry["status"] in DONE:
            record = client.job(entry["job_id"]) if entry["status"] != "expired" else {}
            out["error"] = record.get("error") or {"code": entry["status"], "message": f"the job {entry['status']}"}
        entries.append(out)
    return entries


def write_results(entries: list[dict[str, Any]], out: Path | None) -> None:
    """Write one JSON line per entry to the file (atomically) or to stdout."""
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, out)


def run_batch(
    client: ServiceClient,
    jobs: list[JobLine],
    defaults: Mapping[str, Any] | None = None,
    interval: float = 0.5,
    timeout: float | None = None,
    progress: TextIO | None = None,
) -> Outcome:
    """Submit checked jobs as one batch and wait for them; ServiceError when the service refuses it."""
    answer = client.submit_batch([j.job for j in jobs], dict(defaults or {}))
    batch_id = str(answer["batch_id"])
    if progress is not None:
        progress.write(f"submitted batch {batch_id}: {plural(len(jobs), 'job')} to {client.url}\n")
    try:
        batch, timed_out = poll(client, batch_id, len(jobs), interval, timeout, progress)
    except KeyboardInterrupt:
        raise BatchInterrupted(batch_id) from None
    return Outcome(batch_id, collect(client, batch, jobs), timed_out)


def summary(outcome: Outcome, seconds: float, out: Path | None) -> str:
    """One closing line for stderr."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts().items()))
    where = f"; results in {out}" if out else ""
    late = "; stopped waiting (--timeout), unfinished jobs keep running" if outcome.timed_out else ""
    return f"batch {outcome.batch_id}: {plural(len(outcome.entries), 'job')}, {counts} in {seconds:.1f} s{where}{late}"


def submit_file(
    client: ServiceClient,
    jobs: list[JobLine],
    out: Path | None,
    defaults: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    interval: float = 0.5,
    quiet: bool = False,
) -> int:
    """Run checked jobs as a batch and write the results; exit code 0: all succeeded, 1: some did not, 2: refused."""
    stream = None if quiet else sys.stderr
    started = time.monotonic()
    try:
        outcome = run_batch(client, jobs, defaults, interval, timeout, stream)
    except ServiceError as exc:
        if exc.status == 400:
            print(explain_rejection(exc, jobs), file=sys.stderr)
            return 2
        raise
    except BatchInterrupted as stop:
        print(
            f"\ninterrupted: batch {stop.batch_id} keeps running on the service "
            f"(GET {client.url}/api/v1/batches/{stop.batch_id}); no results were written",
            file=sys.stderr,
        )
        return 130
    write_results(outcome.entries, out)
    print(summary(outcome, time.monotonic() - started, out), file=sys.stderr)
    return 0 if all(e["status"] == "succeeded" for e in outcome.entries) else 1
