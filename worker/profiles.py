"""Measured level profiles: per host, device, model and level, what jobs there cost and how good they were.

One Redis hash per (host, device, model, level), `dq:profile:<host>:<device>:<model>:<level>`, updated by one
Lua script call per sample, so workers on one host share it and concurrent updates never lose one. A hash
expires DYNAQUANT_PROFILE_TTL_DAYS after its last update.

Rolling figures are means of the first WARMUP samples, then exponentially weighted with weight ALPHA (each new
sample counts 1/WARMUP): a profile follows a changed machine within a few dozen jobs, and a single slow job
moves it only a tenth of the way. A window would need every sample stored; this needs one number per figure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import redis

from worker.contracts import MIB, JobResult, LevelProfile
from worker.policy import LEVELS, LevelStats

log = logging.getLogger(__name__)

PREFIX = "dq:profile:"
WARMUP = 10
ALPHA = 1.0 / WARMUP
"""Weight of a new sample once WARMUP samples are in (before that, the plain mean)."""
STATS_CACHE_SECONDS = 5.0
"""How long level_stats answers from memory: the policy asks before every job, the figures move slowly."""

Kind = Literal["real", "calibration", "shadow"]
KINDS: tuple[Kind, ...] = ("real", "calibration", "shadow")

# KEYS[1]: the profile hash. ARGV: ttl seconds, now, host, device, model, level, kind counter field, then pairs
# (count field, mean field, value) of rolling means to update; an empty value leaves that mean alone.
_RECORD = """
redis.call('HSET', KEYS[1], 'host', ARGV[3], 'device', ARGV[4], 'model', ARGV[5], 'level', ARGV[6],
  'updated_at', ARGV[2])
if ARGV[7] ~= '' then
  redis.call('HINCRBY', KEYS[1], 'jobs', 1)
  redis.call('HINCRBY', KEYS[1], ARGV[7], 1)
end
local i = 8
while i + 2 <= #ARGV do
  if ARGV[i + 2] ~= '' then
    local n = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
    local x = tonumber(ARGV[i + 2])
    local mean = tonumber(redis.call('HGET', KEYS[1], ARGV[i + 1]) or x)
    local weight = math.max(1 / n, ALPHA)
    redis.call('HSET', KEYS[1], ARGV[i + 1], tostring(mean + weight * (x - mean)))
  end
  i = i + 3
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
""".replace("ALPHA", repr(ALPHA))

MEANS: tuple[tuple[str, str], ...] = (
    ("speed_n", "seconds_per_job"),
    ("prompt_n", "prompt_tokens_per_second"),
    ("decode_n", "decode_tokens_per_second"),
    ("checked", "pass_rate"),
    ("graded", "grade_error"),
    ("loads", "resident_mb"),
)
"""(sample count, rolling mean) field pairs of a profile hash."""
REVIEW_COUNTS = ("reviewed", "reviewed_accepted", "reviewed_flagged", "reviewed_flagged_accepted")
"""Counts of reviewer verdicts in a profile hash: every one, accepted, on checker flags, flags accepted."""


@dataclass(frozen=True)
class Sample:
    """One job's figures for one level; None where the job could not measure it."""

    level: str
    seconds: float | None = None
    prompt_tokens_per_second: float | None = None
    decode_tokens_per_second: float | None = None
    passed: float | None = None
    grade_error: float | None = None


def job_sample(result: JobResult) -> Sample:
    """What a finished job says about its level: speed when every draft ran there, quality of its first drafts.

    Speed (generation seconds, prompt and decode tokens per second) counts only a job whose drafts all ran at
    its level, so an escalated retry's time is never charged to the level below. Quality is the share of first
    drafts (one per paragraph part) whose verdict passed, and their mean absolute grade error.
    """
    level = result.level
    attempts = result.attempts
    firsts = [a for a in attempts if a.attempt == 1 and a.level == level]
    if firsts:
        passed: float | None = sum(a.verdict == "pass" for a in firsts) / len(firsts)
        errors = [abs(a.grade - result.grade_level) for a in firsts if a.grade is not None]
        grade_error = sum(errors) / len(errors) if errors else None
    elif result.quality is not None:
        passed = 1.0 if result.quality.passed else 0.0
        grade_error = abs(result.quality.grade_error) if result.quality.grade_error is not None else None
    else:
        passed = grade_error = None
    if any(a.level != level for a in attempts):
        return Sample(level, passed=passed, grade_error=grade_error)
    seconds = result.generation_seconds
    prompt = result.prompt_seconds
    prompt_tps = decode_tps = None
    if prompt is not None and 0 < prompt < seconds:
        prompt_tps = result.tokens_in / prompt
        decode_tps = result.tokens_out / (seconds - prompt)
    elif seconds > 0:
        decode_tps = result.tokens_out / seconds
    return Sample(level, seconds if seconds > 0 else None, prompt_tps, decode_tps, passed, grade_error)


def profile_key(host: str, device: str, model: str, level: str) -> str:
    """The Redis hash of one level profile."""
    return f"{PREFIX}{host}:{device}:{model}:{level}"


def _number(raw: dict[str, str], field: str) -> float | None:
    value = raw.get(field)
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _count(raw: dict[str, str], field: str) -> int:
    value = _number(raw, field)
    return int(value) if value is not None else 0


def parse_profile(raw: dict[str, str]) -> LevelProfile | None:
    """A profile hash as the API's record (None for a hash that is not one, e.g. half-expired)."""
    if not all(raw.get(f) for f in ("host", "device", "model", "level")) or raw["level"] not in LEVELS:
        return None
    resident, estimated = _number(raw, "resident_mb"), _number(raw, "estimated_mb")
    error = (estimated - resident) / resident if resident and estimated is not None else None

    def rounded(field: str, digits: int = 3) -> float | None:
        value = _number(raw, field)
        return round(value, digits) if value is not None else None

    return LevelProfile.model_validate(
        {
            "host": raw["host"],
            "device": raw["device"],
            "model": raw["model"],
            "level": raw["level"],
            "jobs": _count(raw, "jobs"),
            "real_jobs": _count(raw, "real"),
            "calibration_jobs": _count(raw, "calibration"),
            "shadow_jobs": _count(raw, "shadow"),
            "seconds_per_job": rounded("seconds_per_job", 4),
            "prompt_tokens_per_second": rounded("prompt_tokens_per_second", 1),
            "decode_tokens_per_second": rounded("decode_tokens_per_second", 1),
            "resident_mb": rounded("resident_mb", 1),
            "estimated_mb": rounded("estimated_mb", 1),
            "estimate_error": round(error, 3) if error is not None else None,
            "checked": _count(raw, "checked"),
            "pass_rate": rounded("pass_rate"),
            "grade_error": rounded("grade_error"),
            **review_figures(raw, _number(raw, "pass_rate")),
            "updated_at": _number(raw, "updated_at") or 0.0,
        }
    )


def review_figures(raw: dict[str, str], pass_rate: float | None) -> dict[str, float | int | None]:
    """What reviewers said of a level's drafts, and the checker's pass rate corrected by it.

    Reviewers confirm some of the checker's passes and accept some of its flags as they are; the corrected rate
    is pass_rate x (share of passes accepted) + (1 - pass_rate) x (share of flags accepted). A verdict no reviewer
    has judged yet is taken as the checker says (its passes good, its flags not).
    """
    counts = {field: _count(raw, field) for field in REVIEW_COUNTS}
    reviewed = counts["reviewed"]
    if not reviewed:
        return {"reviewed": 0, "review_accept_rate": None, "reviewed_pass_rate": None}
    passes = reviewed - counts["reviewed_flagged"]
    passes_accepted = counts["reviewed_accepted"] - counts["reviewed_flagged_accepted"]
    pass_share = passes_accepted / passes if passes else 1.0
    flag_share = counts["reviewed_flagged_accepted"] / counts["reviewed_flagged"] if counts["reviewed_flagged"] else 0.0
    corrected = pass_rate * pass_share + (1 - pass_rate) * flag_share if pass_rate is not None else None
    return {
        "reviewed": reviewed,
        "review_accept_rate": round(counts["reviewed_accepted"] / reviewed, 3),
        "reviewed_pass_rate": round(corrected, 3) if corrected is not None else None,
    }


def record_review(
    pipe: redis.client.Pipeline,
    host: str,
    device: str,
    model: str,
    level: str,
    verdict: tuple[bool, bool],
    ttl_seconds: int,
) -> None:
    """Add to `pipe` the count of a reviewer's verdict, (checker passed, reviewer accepted), on a draft of a level."""
    checker_passed, accepted = verdict
    key = profile_key(host, device, model, level)
    fields: dict[Any, Any] = {"host": host, "device": device, "model": model, "level": level}
    pipe.hset(key, mapping={**fields, "updated_at": repr(time.time())})
    pipe.hincrby(key, "reviewed", 1)
    pipe.hincrby(key, "reviewed_accepted", int(accepted))
    pipe.hincrby(key, "reviewed_flagged", int(not checker_passed))
    pipe.hincrby(key, "reviewed_flagged_accepted", int(accepted and not checker_passed))
    pipe.expire(key, ttl_seconds)


def stats_of(profile: LevelProfile) -> LevelStats:
    """The policy's view of a profile (pure figures, no pydantic); reviewers' verdicts correct the pass rate."""
    resident = int(profile.resident_mb * MIB) if profile.resident_mb is not None else None
    quality = profile.reviewed_pass_rate if profile.reviewed_pass_rate is not None else profile.pass_rate
    return LevelStats(profile.jobs, profile.seconds_per_job, quality, resident)


def read_profiles(client: redis.Redis, model: str | None = None, host: str | None = None) -> list[LevelProfile]:
    """Every stored profile (optionally of one model and/or host), by host, device, model and level."""
    keys = sorted({k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(f"{PREFIX}*", count=500)})
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    found: list[LevelProfile] = []
    for raw in pipe.execute() if keys else []:
        profile = parse_profile({_text(k): _text(v) for k, v in raw.items()})
        if profile is None or (model is not None and profile.model != model):
            continue
        if host is None or profile.host == host:
            found.append(profile)
    found.sort(key=lambda p: (p.host, p.device, p.model, LEVELS.index(p.level)))
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProfileStore:
    """This worker's host and device's profiles: written after jobs and loads, read by the policy and the API."""

    def __init__(self, client: redis.Redis, host: str, device: str, ttl_days: float = 30.0) -> None:
        self.client = client
        self.host = host
        self.device = device
        self.ttl_seconds = max(int(ttl_days * 86400), 1)
        self._script = client.register_script(_RECORD)
        self._cache: dict[str, tuple[float, dict[str, LevelStats]]] = {}
        self._lock = threading.Lock()

    def key(self, model: str, level: str) -> str:
        """The hash of one of this host's profiles."""
        return profile_key(self.host, self.device, model, level)

    def _write(self, model: str, level: str, kind: str, means: Iterable[tuple[str, str, float | None]]) -> None:
        args: list[str | float] = [self.ttl_seconds, time.time(), self.host, self.device, model, level, kind]
        for count, mean, value in means:
            args += [count, mean, "" if value is None else repr(float(value))]
        self._script(keys=[self.key(model, level)], args=args)
        with self._lock:
            self._cache.pop(model, None)

    def record(self, model: str, sample: Sample, kind: Kind = "real") -> None:
        """Add one job's figures to its level's profile (raises on a Redis error; see record_job)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: allowed are {', '.join(KINDS)}")
        values = (
            sample.seconds,
            sample.prompt_tokens_per_second,
            sample.decode_tokens_per_second,
            sample.passed,
            sample.grade_error,
        )
        self._write(model, sample.level, kind, [(c, m, v) for (c, m), v in zip(MEANS[:5], values, strict=True)])

    def record_job(self, result: JobResult, kind: Kind = "real") -> bool:
        """Add a finished job to its level's profile; a Redis error is logged, never raised (the job is done)."""
        try:
            self.record(result.model, job_sample(result), kind)
            return True
        except redis.RedisError as exc:
            log.warning(
                "could not record a %s job of %s at %s in its profile: %s", kind, result.model, result.level, exc
            )
            return False

    def record_load(self, model: str, level: str, measured_bytes: int, estimated_bytes: int) -> None:
        """Add a load's measured resident memory (and the loader's estimate) to its level's profile; never raises."""
        try:
            if measured_bytes > 0:
                self.client.hset(self.key(model, level), "estimated_mb", repr(estimated_bytes / MIB))
                self._write(model, level, "", [("loads", "resident_mb", measured_bytes / MIB)])
        except redis.RedisError as exc:
            log.warning("could not record the load of %s at %s in its profile: %s", model, level, exc)

    def profiles(self, model: str) -> dict[str, LevelProfile]:
        """This host and device's profiles of one model, by level."""
        pipe = self.client.pipeline(transaction=False)
        for level in LEVELS:
            pipe.hgetall(self.key(model, level))
        found: dict[str, LevelProfile] = {}
        for level, raw in zip(LEVELS, pipe.execute(), strict=True):
            profile = parse_profile({_text(k): _text(v) for k, v in raw.items()}) if raw else None
            if profile is not None:
                found[level] = profile
        return found

    def level_stats(self, model: str) -> dict[str, LevelStats]:
        """Per level, what this host measured for a model (few jobs included; the policy weighs the counts).

        Answers from memory for a few seconds, and with nothing while Redis is unreachable (the matrix decides).
        """
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(model)
        if cached is not None and now - cached[0] < STATS_CACHE_SECONDS:
            return cached[1]
        try:
            stats = {level: stats_of(p) for level, p in self.profiles(model).items()}
        except redis.RedisError as exc:
            log.warning("could not read the level profiles of %s: %s", model, exc)
            return {}
        with self._lock:
            self._cache[model] = (now, stats)
        return stats
