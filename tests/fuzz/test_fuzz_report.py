"""The fuzz figures reach docs/reliability.md: one row per group, the totals, every distinct failure."""

from __future__ import annotations

from tests.faults.report import render


def _counts(cases: int, tracebacks: int = 0, broken: int = 0, lost: int = 0) -> dict:
    return {"cases": cases, "ok": cases, "app_errors": {}, "tracebacks": tracebacks,
            "files_lost": lost, "contract_violations": broken}  # fmt: skip


def test_fuzz_rows_in_reliability_report() -> None:
    fuzz = {
        "profile": "long",
        "cases": 3500,
        "targets": {
            "config.yaml:cli": _counts(1000),
            "config.set:load_config": _counts(500, tracebacks=2),
            "manifest: ckpt gc ROOT": _counts(1000, broken=1, lost=5),
            "tag: ckpt ls ROOT": _counts(1000),
        },
        "failures": {
            "manifest: ckpt gc ROOT | contract | files lost": {"count": 1, "detail": "files lost: 5"}
        },
    }
    text = render({"fuzz": fuzz})
    assert "| fuzz (long profile): config loader: YAML, --set, WARMSTART_* env; 2 targets | 1500 | " in text
    assert "2 tracebacks, 0 broken promises | - | 0 files lost |" in text
    assert "tensor bytes; 2 targets | 2000 | 0 tracebacks, 1 broken promises | - | 5 files lost |" in text
    assert "`WS_FUZZ_PROFILE=long`): 3500 cases, 1 distinct failure(s):" in text
    assert "- manifest: ckpt gc ROOT | contract | files lost (x1): files lost: 5" in text


def test_no_fuzz_figures_no_fuzz_rows() -> None:
    assert "fuzz" not in render({}).lower()
