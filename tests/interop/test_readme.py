"""The README's Python examples run as written against a real server (on each backend)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 7


def test_the_python_examples_run_in_order(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {}
    for block in BLOCKS:
        exec(compile(block.replace("127.0.0.1:50051", target), str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "StatusCode.NOT_FOUND EXPERIMENT_NOT_FOUND" in printed
    assert "1 1\n" in printed
    assert "{'question': 'Where is my order?'} {'answer': 'Track it at /orders'}" in printed
    assert "\n1.0\n" in printed  # the pass rate of version 2
    assert "\n3\n" in printed  # the labeling session's completed items
    assert "candidate  assessment" in printed and "'model_id': 'm-" in printed  # map order varies


def test_the_client_readme_trace_example_runs(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = (README.parent / "client" / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "new_trace_id" in b]
    exec(compile(block.replace("127.0.0.1:50051", target), "client/README.md", "exec"), {})
    assert re.fullmatch(r"\['tr-[0-9a-f]{32}'\]\n", capsys.readouterr().out)
