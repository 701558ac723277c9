"""Batch files and the `dynaquant` command line without a server: parsing, checks, messages and views."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dynaquant.api import ServiceError, resolve_url
from dynaquant.cli import build_parser, main
from dynaquant.jobfile import JobFileError, detect_format, load_jobs, parse_text
from dynaquant.progress import ProgressBar
from dynaquant.render import status_text, table
from dynaquant.submit import explain_rejection
from dynaquant.up import flower_argv, flower_env
from tests.states import memory_gib, worker_state
from webapp.aggregate import status_view
from worker.contracts import QueueSummary
from worker.settings import get_settings

UNUSED_URL = "http://127.0.0.1:9"  # nothing listens on the discard port: a network call would fail loudly


def problems(text: str, fmt: str = "jsonl", defaults: dict | None = None) -> list[str]:
    with pytest.raises(JobFileError) as caught:
        parse_text(text, fmt, defaults)
    return caught.value.problems


def test_good_jsonl_keeps_line_numbers_and_only_the_given_fields() -> None:
    text = '{"text": "A long text.", "grade_level": 5}\n\n{"text": "Another.", "grade_level": 7.0, "priority": 0}\n'
    jobs = parse_text(text, "jsonl")
    assert [j.line for j in jobs] == [1, 3]
    assert jobs[0].job == {"text": "A long text.", "grade_level": 5}
    assert jobs[1].job["grade_level"] == 7 and isinstance(jobs[1].job["grade_level"], int)


def test_bad_json_line_is_named() -> None:
    found = problems('{"text": "ok", "grade_level": 5}\n{"text": "broken", \n')
    assert len(found) == 1 and found[0].startswith("line 2: not valid JSON")


def test_every_bad_line_is_reported_at_once() -> None:
    text = "\n".join(
        [
            json.dumps({"text": "fine", "grade_level": 3}),
            json.dumps({"grade_level": 3}),
            json.dumps({"text": "x", "grade_level": 14}),
            json.dumps(["not", "an", "object"]),
            json.dumps({"text": "x", "grade_level": 3, "colour": "red"}),
            json.dumps({"text": "x", "grade_level": 3, "task_priority": "fast"}),
        ]
    )
    found = problems(text)
    assert found[0].startswith("line 2: text is required: a non-empty string, the text to simplify")
    assert found[1] == "line 3: grade_level must be an integer from 1 to 12, the school grade to write for; got 14"
    assert found[2].startswith("line 4: must be a JSON object")
    assert found[3].startswith("line 5: colour is not a known field; allowed are text, grade_level, subject")
    assert found[4].startswith("line 6: task_priority must be one of quality, balanced, speed")
    assert found[4].endswith("got 'fast'")


def test_missing_grade_is_fine_when_a_default_gives_it() -> None:
    assert problems('{"text": "x"}')[0].startswith("line 1: grade_level is required")
    assert parse_text('{"text": "x"}', "jsonl", {"grade_level": 4})[0].job == {"text": "x"}


def test_csv_types_cells_and_counts_lines_across_quoted_newlines() -> None:
    text = 'text,grade_level,subject,priority\n"One, two",5,Science,\n\n"multi\nline",6,,0\nthree,x,Art,\n'
    with pytest.raises(JobFileError) as caught:
        parse_text(text, "csv")
    assert caught.value.problems == [
        "line 6: grade_level must be an integer from 1 to 12, the school grade to write for; got 'x'"
    ]
    jobs = parse_text(text.replace("three,x", "three,2"), "csv")
    assert [j.line for j in jobs] == [2, 4, 6]
    assert jobs[0].job == {"text": "One, two", "grade_level": 5, "subject": "Science"}
    assert jobs[1].job == {"text": "multi\nline", "grade_level": 6, "priority": 0}


def test_csv_unknown_column_and_extra_cells() -> None:
    assert problems("text,grade,subject\nx,5,Art\n", "csv") == [
        "line 1: unknown column 'grade'; allowed columns are text, grade_level, subject, task_priority, "
        "min_quantization, force_quantization, model, priority, max_tokens"
    ]
    assert problems("text,grade_level\nx,5,extra\n", "csv") == ["line 2: has 3 cells; the header has 2 columns"]


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("", "jsonl", "no jobs: the file is empty"),
        ("\n \n", "jsonl", "no jobs: the file is empty"),
        ("", "csv", "no jobs: the file is empty"),
        ("text,grade_level\n", "csv", "no jobs: the file is empty apart from its header"),
    ],
)
def test_empty_files_are_refused(text: str, fmt: str, message: str) -> None:
    assert problems(text, fmt) == [message]


def test_files_are_read_as_utf8_and_their_format_detected(tmp_path: Path) -> None:
    jsonl = tmp_path / "jobs.txt"
    jsonl.write_text('\ufeff{"text": "Ünïcode", "grade_level": 2}\n', encoding="utf-8")
    assert load_jobs(jsonl)[0].job["text"] == "Ünïcode"
    assert detect_format(Path("a.csv"), "{") == "csv" and detect_format(Path("a.data"), "text,grade_level") == "csv"
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "caf\xe9", "grade_level": 2}\n')
    with pytest.raises(JobFileError, match="not UTF-8"):
        load_jobs(latin)
    with pytest.raises(JobFileError, match="cannot be read"):
        load_jobs(tmp_path / "missing.jsonl")


def test_the_error_message_lists_problems_and_says_nothing_was_sent() -> None:
    text = "\n".join(json.dumps({"text": "x", "grade_level": 20 + i}) for i in range(25))
    with pytest.raises(JobFileError) as caught:
        parse_text(text, "jsonl", where="big.jsonl")
    message = str(caught.value)
    assert message.startswith("big.jsonl: 25 problems; nothing was submitted")
    assert "line 20: grade_level" in message and "line 21:" not in message and "... and 5 more" in message


def test_submit_of_a_bad_file_exits_2_before_any_network_call(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "grade_level": 3}\n{"text": "x", "grade_level": 14}\n', encoding="utf-8")
    assert main(["submit", str(bad), "--url", UNUSED_URL]) == 2
    assert "line 2: grade_level must be an integer from 1 to 12, the school grade to write for; got 14" in (
        capsys.readouterr().err
    )


def test_a_bad_default_option_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "fine"}\n', encoding="utf-8")
    assert main(["submit", str(good), "--grade-level", "14", "--url", UNUSED_URL]) == 2
    assert "error: --grade-level: must be an integer from 1 to 12" in capsys.readouterr().err


def test_parser_keeps_up_and_adds_the_client_commands() -> None:
    parser = build_parser()
    up = parser.parse_args(["up", "--port", "9000", "--no-flower"])
    assert (up.command, up.port, up.no_flower, up.workers) == ("up", 9000, True, 1)
    submit = parser.parse_args(["submit", "f.csv", "-o", "r.jsonl", "--grade", "4", "--task-priority", "speed"])
    assert (submit.grade_level, submit.task_priority, submit.out) == (4, "speed", Path("r.jsonl"))
    assert parser.parse_args(["job", "abc", "--json"]).json is True
    with pytest.raises(SystemExit):
        parser.parse_args(["submit", "f.csv", "--force-quantization", "int3"])


def test_url_comes_from_the_option_then_the_environment(monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    monkeypatch.delenv("DYNAQUANT_URL", raising=False)
    assert resolve_url() == "http://127.0.0.1:8000"
    get_settings.cache_clear()
    monkeypatch.setenv("DYNAQUANT_URL", "http://svc:9000/")
    assert resolve_url() == "http://svc:9000" and resolve_url("http://other:1") == "http://other:1"


def test_a_service_refusal_is_mapped_back_to_the_file_line() -> None:
    jobs = parse_text('{"text": "a", "grade_level": 3}\n\n{"text": "b", "grade_level": 3, "model": "nope"}', "jsonl")
    refusal = ServiceError(400, "invalid_input", "items[1].model: unknown model 'nope'", "items[1].model")
    assert explain_rejection(refusal, jobs).startswith("line 3: model unknown model 'nope'")


def test_progress_bar_and_tables() -> None:
    stream = io.StringIO()
    bar = ProgressBar(10, stream, width=10)
    bar.update({"succeeded": 4, "running": 1, "queued": 5})
    bar.update({"succeeded": 4, "running": 1, "queued": 5})  # unchanged: not printed twice to a log
    assert stream.getvalue().count("\n") == 1 and "[####......] 4/10 done (4 succeeded, 1 running, 5 queued)" in (
        stream.getvalue()
    )
    assert table(["A", "BB"], [["x", None]]) == "A  BB\nx  -"
    queue = QueueSummary(name="simplify", depth=3, by_priority={"0": 1, "5": 2, "9": 0}, running=1)
    worker = worker_state("w1@h", memory=memory_gib(16.0, 8.0), active_job=None, jobs_done=2)
    body = status_view([worker], queue).model_dump(mode="json")
    text = status_text(body, "http://x")
    assert "1 worker alive" in text and "50.0% of 16.0 GB" in text and "gemma-3-270m=int4" in text
    assert "queue simplify: 3 waiting (priority 0: 1, 5: 2), 1 running" in text
    nobody = status_view([], queue).model_dump(mode="json")
    assert "no worker is alive" in status_text(nobody, "u")


def test_flowers_api_is_opened_only_on_loopback_without_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWER_UNAUTHENTICATED_API", raising=False)
    assert flower_env()["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert flower_env("localhost")["FLOWER_UNAUTHENTICATED_API"] == "true"
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED_API", "true")
    assert "FLOWER_UNAUTHENTICATED_API" not in flower_env(basic_auth="admin:pw"), "basic auth guards the API"
    assert "--basic-auth=admin:pw" in flower_argv(5555, basic_auth="admin:pw")
    with pytest.raises(SystemExit, match="FLOWER_BASIC_AUTH"):
        flower_env("0.0.0.0")
