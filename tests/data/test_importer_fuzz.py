"""Importer fuzzing: Hypothesis breaks MIND, EB-NeRD, MovieLens and generic files; every case
ends in a one-line error naming file, line and field (or, with --skip-invalid, in a complete
dataset that counts what it skipped); never a traceback, a hang or a half-written dataset.

The real CLI entry point (`newsdesk.cli.main.run`, the console script) runs in-process for
speed; a few cases also run as real subprocesses. Mutations of valid files: truncation (a cut
line), invalid UTF-8, NUL bytes, a column added or removed, a huge field, a duplicated line
(duplicate ids), times out of range; EB-NeRD's Parquet files get the same at the column level
(nulls, wrong types, huge strings, duplicate ids, impossible times) and truncated files.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from newsdesk.cli import main as cli_main
from newsdesk.data.dataset import MANIFEST, Dataset
from tests.data.test_importers_ebnerd import _articles, _behaviors, _history
from tests.data.test_importers_generic import MAPPING
from tests.data.test_importers_mind import BEHAVIORS, NEWS

NEWSDESK = Path(sys.executable).parent / "newsdesk"
ROW_ERROR = re.compile(r"(?P<file>[\w.\-]+):(?P<line>\d+): field '(?P<field>[^']+)': ")
# no shrinking: a failing case is printed as generated (shrinking imports costs minutes)
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))
CASE_BUDGET_S = 20.0  # a case slower than this is a hang


def run_cli(*args: str) -> tuple[int, str, str]:
    """The console script in-process: (exit code, stdout, stderr). An exception escaping it
    (a traceback for the user) fails the test."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["newsdesk", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            cli_main.run()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


# -- mutations of text files ------------------------------------------------------------------
TIMES_OUT_OF_RANGE = ["13/45/2019 8:55:22 AM", "11/15/99999 8:55:22 AM", "0/0/0 0:00:00 AM",
                      "-1", "99999999999999999999", "1e300", "nan", "-62135596800001",
                      "253402300800000"]


@st.composite
def text_mutations(draw: st.DrawFn, sep: str) -> list[tuple[str, object]]:
    ops = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0.05, 0.98)),
        st.tuples(st.just("bad_utf8"), st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80",
                                                         b"\x80abc"])),
        st.tuples(st.just("nul"), st.integers(1, 4)),
        st.tuples(st.just("add_column"), st.just(sep)),
        st.tuples(st.just("drop_column"), st.just(sep)),
        st.tuples(st.just("huge_field"), st.sampled_from([10_000, 200_000, 2_000_000])),
        st.tuples(st.just("duplicate_line"), st.just(None)),
        st.tuples(st.just("bad_time"), st.sampled_from(TIMES_OUT_OF_RANGE)),
        st.tuples(st.just("empty"), st.just(None)),
    )
    return draw(st.lists(st.tuples(ops, st.integers(0, 10_000)), min_size=1, max_size=3))


def mutate(data: bytes, ops: list, sep: str, time_col: int | None) -> bytes:
    for (op, arg), where in ops:
        lines = data.split(b"\n")
        i = where % max(1, len([x for x in lines if x]))
        if op == "truncate":
            data = data[: int(len(data) * arg)]
        elif op == "bad_utf8":
            pos = where % max(1, len(data))
            data = data[:pos] + arg + data[pos:]
        elif op == "nul":
            pos = where % max(1, len(data))
            data = data[:pos] + b"\x00" * arg + data[pos:]
        elif op in ("add_column", "drop_column", "huge_field", "bad_time") and lines[i]:
            cols = lines[i].split(sep.encode())
            if op == "add_column":
                cols.insert(where % (len(cols) + 1), b"extra")
            elif op == "drop_column" and len(cols) > 1:
                cols.pop(where % len(cols))
            elif op == "huge_field":
                cols[where % len(cols)] = b"A" * arg
            elif op == "bad_time" and time_col is not None and time_col < len(cols):
                cols[time_col] = arg.encode()
            lines[i] = sep.encode().join(cols)
            data = b"\n".join(lines)
        elif op == "duplicate_line" and lines[i]:
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif op == "empty":
            data = b""
    return data


def check_outcome(code: int, stdout: str, stderr: str, out: Path, files: set[str],
                  skip_invalid: bool) -> None:
    """The contract of every case (see the module docstring)."""
    assert code in (0, 1), (code, stderr)
    assert "Traceback" not in stderr
    leftovers = [p.name for p in out.glob(".staging-*")] + [p.name for p in out.glob(".trash-*")]
    assert leftovers == [], leftovers  # no half-written dataset beside the real one
    if code == 1:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        message = lines[0]
        assert message.startswith("error: "), message
        assert any(name in message for name in files), f"names no file: {message}"
        m = ROW_ERROR.search(message)
        if m is not None:
            assert m.group("file") in files and int(m.group("line")) >= 1, message
        else:  # a whole-file problem (unreadable Parquet, missing column): file and field
            assert "field" in message or "column" in message, f"names no field: {message}"
        assert not (out / MANIFEST).exists()  # nothing committed
        return
    report = json.loads(stdout)
    ds = Dataset(out)
    for table, n in report["rows"].items():
        assert ds.count(table) == n, table  # what the report says is what was written
    if not skip_invalid:
        assert report["bad_rows"] == 0
    else:
        assert report["bad_rows"] == sum(report["bad_by_field"].values())
        for err in report["errors"]:
            assert err["file"] in files and err["line"] >= 1 and err["field"]


def _timed(fn, *args: str) -> tuple[int, str, str]:
    started = time.monotonic()
    result = fn(*args)
    assert time.monotonic() - started < CASE_BUDGET_S, "import hung"
    return result


# -- the formats ------------------------------------------------------------------------------
def _write_mind(folder: Path, behaviors: bytes, news: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "behaviors.tsv").write_bytes(behaviors)
    (folder / "news.tsv").write_bytes(news)


MIND_BEHAVIORS = ("\n".join(BEHAVIORS) + "\n").encode()
MIND_NEWS = ("\n".join(NEWS) + "\n").encode()


@FUZZ
@given(ops=text_mutations("\t"), target=st.sampled_from(["behaviors", "news"]),
       skip=st.booleans())
def test_mind_fuzz(ops: list, target: str, skip: bool) -> None:
    with TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        behaviors, news = MIND_BEHAVIORS, MIND_NEWS
        if target == "behaviors":
            behaviors = mutate(behaviors, ops, "\t", time_col=2)
        else:
            news = mutate(news, ops, "\t", time_col=None)
        _write_mind(src, behaviors, news)
        args = ["import", "mind", str(src), "--out", str(out), "--json"]
        result = _timed(run_cli, *args, *(["--skip-invalid"] if skip else []))
        check_outcome(*result, out, {"behaviors.tsv", "news.tsv"}, skip)


ML_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n"
ML_ITEM = ("242|Kolya (1996)|24-Jan-1997||http://imdb/242|" + "|".join(["0"] * 19) + "\n"
           "302|L.A. Confidential (1997)|01-Jan-1997||http://imdb/302|"
           + "|".join(["0"] * 19) + "\n").encode("latin-1")


@FUZZ
@given(ops=text_mutations("\t"), item_ops=text_mutations("|"),
       target=st.sampled_from(["u.data", "u.item", "both"]), skip=st.booleans())
def test_movielens_fuzz(ops: list, item_ops: list, target: str, skip: bool) -> None:
    with TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        data = mutate(ML_DATA, ops, "\t", time_col=3) if target != "u.item" else ML_DATA
        item = mutate(ML_ITEM, item_ops, "|", time_col=2) if target != "u.data" else ML_ITEM
        (src / "u.data").write_bytes(data)
        (src / "u.item").write_bytes(item)
        args = ["import", "movielens", str(src), "--out", str(out), "--json"]
        result = _timed(run_cli, *args, *(["--skip-invalid"] if skip else []))
        check_outcome(*result, out, {"u.data", "u.item"}, skip)


GENERIC_EVENTS = (b"event,kind,member,item,ts_ms,seconds\n"
                  b"e1,click,u1,1,1709287200000,\n"
                  b'e2,dwell,u1,1,1709287260000,"12.5"\n'
                  b"e3,click,u2,9,1709287300000,\n")
GENERIC_ARTICLES = (
    b'{"id": 1, "headline": " Hello ", "teaser": "t", "section": "news", '
    b'"keywords": ["a", "b"], "published": "2024-03-01T10:00:00Z"}\n'
    b'{"id": "2", "headline": "World", "published": "2024-03-01 11:00:00"}\n')


@FUZZ
@given(ops=text_mutations(","), target=st.sampled_from(["events.csv", "articles.jsonl"]),
       skip=st.booleans())
def test_generic_fuzz(ops: list, target: str, skip: bool) -> None:
    with TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        (src / "mapping.yaml").write_text(MAPPING)
        events, articles = GENERIC_EVENTS, GENERIC_ARTICLES
        if target == "events.csv":
            events = mutate(events, ops, ",", time_col=4)
        else:
            articles = mutate(articles, ops, ",", time_col=None)
        (src / "events.csv").write_bytes(events)
        (src / "articles.jsonl").write_bytes(articles)
        pl.DataFrame({"rid": ["r1"], "uid": ["u1"], "at": [datetime(2024, 3, 1, 10, 1)],
                      "items": [["1", "2"]]}).write_parquet(src / "slates.parquet")
        args = ["import", "generic", str(src), "--out", str(out), "--json"]
        result = _timed(run_cli, *args, *(["--skip-invalid"] if skip else []))
        check_outcome(*result, out, {"events.csv", "articles.jsonl", "slates.parquet",
                                     "mapping.yaml"}, skip)


# -- EB-NeRD: Parquet, broken at the column level or as bytes --------------------------------
def _ebnerd_mutation(frame: pl.DataFrame, op: str, row: int) -> pl.DataFrame:
    row %= frame.height
    if op == "null_user":
        return frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(None)
                                  .otherwise(pl.col("user_id")).alias("user_id"))
    if op == "duplicate_row":
        return pl.concat([frame, frame[row]])
    if op == "time_as_text":
        return frame.with_columns(pl.col("impression_time").cast(pl.Utf8))
    if op == "time_out_of_range":
        far = [datetime(1, 1, 1) if i == row else t
               for i, t in enumerate(frame["impression_time"].to_list())]
        return frame.with_columns(pl.Series("impression_time", far))
    if op == "huge_field":
        return frame.with_columns(pl.Series("user_id", [
            "U" * 2_000_000 if i == row else str(u) for i, u in enumerate(frame["user_id"])]))
    if op == "drop_column":
        return frame.drop(frame.columns[row % len(frame.columns)])
    if op == "empty_inview":
        return frame.with_columns(pl.Series("article_ids_inview", [
            [] if i == row else v for i, v in enumerate(frame["article_ids_inview"].to_list())],
            dtype=pl.List(pl.Int32)))
    if op == "nul_in_ids":
        return frame.with_columns(pl.Series("user_id", [
            f"u\x00{u}" if i == row else str(u) for i, u in enumerate(frame["user_id"])]))
    raise AssertionError(op)


EBNERD_OPS = ["null_user", "duplicate_row", "time_as_text", "time_out_of_range", "huge_field",
              "drop_column", "empty_inview", "nul_in_ids", "truncate_file", "garbage_file"]


@FUZZ
@given(ops=st.lists(st.tuples(st.sampled_from(EBNERD_OPS), st.integers(0, 100)), min_size=1,
                    max_size=3),
       target=st.sampled_from(["behaviors.parquet", "history.parquet", "articles.parquet"]),
       skip=st.booleans())
def test_ebnerd_fuzz(ops: list, target: str, skip: bool) -> None:
    frames = {"behaviors.parquet": _behaviors(), "history.parquet": _history(),
              "articles.parquet": _articles()}
    with TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        frame = frames[target]
        byte_ops = [(op, r) for op, r in ops if op in ("truncate_file", "garbage_file")]
        for op, r in ops:
            if op in ("truncate_file", "garbage_file"):
                continue
            if op in ("null_user", "huge_field", "nul_in_ids") and "user_id" not in frame.columns:
                continue
            if op in ("time_as_text", "time_out_of_range") and \
                    "impression_time" not in frame.columns:
                continue
            if op == "empty_inview" and "article_ids_inview" not in frame.columns:
                continue
            frame = _ebnerd_mutation(frame, op, r)
        frames[target] = frame
        for name, f in frames.items():
            f.write_parquet(src / name)
        for op, r in byte_ops:
            raw = (src / target).read_bytes()
            (src / target).write_bytes(raw[: len(raw) * (r % 90 + 5) // 100]
                                       if op == "truncate_file" else b"PAR1" + bytes(r) * 7)
        args = ["import", "ebnerd", str(src), "--out", str(out), "--json"]
        result = _timed(run_cli, *args, *(["--skip-invalid"] if skip else []))
        check_outcome(*result, out, set(frames), skip)


# -- a few real processes -------------------------------------------------------------------
@pytest.mark.parametrize("kind,files", [
    ("mind", {"behaviors.tsv": MIND_BEHAVIORS[:-7] + b"\x00\xff\n9\tU9\t11/15/99999 1:00:00 AM"
              b"\t\tN3-1\n", "news.tsv": MIND_NEWS}),
    ("movielens", {"u.data": ML_DATA + b"1\t2\t3\n" + b"7\t8\t9\t" + b"9" * 40 + b"\n",
                   "u.item": ML_ITEM}),
    ("ebnerd", "truncated"),
])
def test_real_process_one_line_error(tmp_path: Path, kind: str, files: object) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    if files == "truncated":
        _behaviors().write_parquet(src / "behaviors.parquet")
        _history().write_parquet(src / "history.parquet")
        raw = (src / "behaviors.parquet").read_bytes()
        (src / "behaviors.parquet").write_bytes(raw[: len(raw) // 2])
        names = {"behaviors.parquet"}
    else:
        assert isinstance(files, dict)
        for name, data in files.items():
            (src / name).write_bytes(data)
        names = set(files)
    result = subprocess.run([str(NEWSDESK), "import", kind, str(src), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert any(n in result.stderr for n in names), result.stderr
    assert not (out / MANIFEST).exists()
