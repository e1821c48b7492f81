"""MovieLens as interaction data: movies become articles, ratings become click interactions.

Three layouts are recognised in the source folder (first match wins):

    u.data + u.item          ml-100k: "user \\t item \\t rating \\t unix_ts"; u.item is
                             '|'-separated Latin-1 with 19 genre flags (names from u.genre)
    ratings.csv + movies.csv ml-latest / ml-25m: userId,movieId,rating,timestamp;
                             movieId,title,genres ("Action|Comedy")
    *.inter + *.item         RecBole atomic files (header "user_id:token\\titem_id:token ...")

Ratings -> interactions of type "click" with `rating` set, event_id "ml:{user}:{item}".
Movies -> articles: category = first genre, tags = all genres, published_at = release date
(ml-100k) or 1 January of the release year, else the first rating of the movie.
With no source folder the ml-100k copy inside the `recbole` wheel is used; it is located with
importlib's find_spec and never imported (importing recbole pulls in torch).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from newsdesk.data.importers.base import Importer
from newsdesk.data.importers.sink import ImportSink, iter_lines
from newsdesk.errors import InvalidInput, MissingDependency

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def default_source() -> Path:
    """The ml-100k folder shipped in the recbole wheel (found without importing recbole)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            "MovieLens 100K ships in the recbole wheel, which is not installed; "
            "install it with: pip install recbole --no-deps (or pass a MovieLens folder)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise MissingDependency(f"recbole is installed but {folder} has no ml-100k.inter; "
                                "reinstall it with: pip install recbole --no-deps")
    return folder


def _layout(src: Path) -> tuple[str, Path, Path | None]:
    folder = src if src.is_dir() else src.parent
    for ratings, items, name in (("u.data", "u.item", "ml-100k"),
                                 ("ratings.csv", "movies.csv", "csv")):
        if (folder / ratings).is_file():
            item_path = folder / items
            return name, folder / ratings, item_path if item_path.is_file() else None
    inter = sorted(folder.glob("*.inter"))
    if inter:
        item_path = inter[0].with_suffix(".item")
        return "atomic", inter[0], item_path if item_path.is_file() else None
    raise InvalidInput(f"{folder} has no MovieLens ratings (u.data, ratings.csv or *.inter)",
                       field="src")


def _unix(text: str) -> datetime:
    return datetime.fromtimestamp(int(float(text)), UTC)


class MovieLensImporter(Importer):
    kind = "movielens"

    def input_files(self, src: Path) -> list[Path]:
        _, ratings, items = _layout(src)
        return [ratings] if items is None else [ratings, items]

    def read(self, src: Path, sink: ImportSink) -> None:
        layout, ratings, items = _layout(src)
        sink.report.notes["layout"] = layout
        first_rating = self._ratings(layout, ratings, sink)
        if items is None:
            sink.report.notes["movies_file"] = "absent"
            return
        fallback = 0
        rows = {"ml-100k": self._items_100k, "csv": self._items_csv,
                "atomic": self._items_atomic}[layout](items, sink)
        for number, movie_id, title, genres, released, url in rows:
            published = released or first_rating.get(movie_id)
            row = {"article_id": movie_id, "title": title, "category": genres[0] if genres
                   else "unknown", "tags": genres, "url": url, "language": "en",
                   "brand": "MovieLens",
                   "published_at": published or min(first_rating.values(), default=None)}
            if sink.accept([("articles", row)], items.name, number,
                           {"article_id": "item", "published_at": "release_date"}) \
                    and not released:
                fallback += 1
        sink.report.notes["published_at_from_first_rating"] = fallback

    # -- ratings --------------------------------------------------------------------------------
    def _ratings(self, layout: str, path: Path, sink: ImportSink) -> dict[str, datetime]:
        first: dict[str, datetime] = {}
        if layout == "csv":
            fields = ("userId", "movieId", "rating", "timestamp")
            lines = _csv_records(path, sink, fields)
        else:
            fields = ("user", "item", "rating", "timestamp")
            lines = ((n, t.split()) for n, t in iter_lines(path, sink,
                                                         skip=1 if layout == "atomic" else 0))
        for number, parts in lines:
            if len(parts) < 4:
                sink.reject(path.name, number, "(columns)",
                            f"expected 4 columns (user, item, rating, timestamp), "
                            f"found {len(parts)}")
                continue
            user, item = parts[0].strip(), parts[1].strip()
            try:
                rating = float(parts[2])
            except ValueError:
                sink.reject(path.name, number, fields[2], f"'{parts[2]}' is not a number")
                continue
            try:
                ts = _unix(parts[3])
            except (ValueError, OverflowError, OSError):
                sink.reject(path.name, number, fields[3],
                            f"'{parts[3]}' is not a unix time in seconds")
                continue
            ok = sink.accept([("interactions", {
                "event_id": f"ml:{user}:{item}", "type": "click", "user_id": user,
                "article_id": item, "timestamp": ts, "rating": rating,
            })], path.name, number, {"user_id": fields[0], "article_id": fields[1],
                                     "event_id": fields[1], "rating": fields[2]})
            if ok and (item not in first or ts < first[item]):
                first[item] = ts
        return first

    # -- movies ---------------------------------------------------------------------------------
    Movie = tuple[int, str, str, list[str], datetime | None, str]

    def _items_100k(self, path: Path, sink: ImportSink) -> Iterator[Movie]:
        genre_file = path.parent / "u.genre"
        genres = ML100K_GENRES
        if genre_file.is_file():
            pairs = [ln.split("|") for ln in genre_file.read_text("latin-1").splitlines() if ln]
            genres = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
        for number, text in iter_lines(path, sink, encoding="latin-1"):
            parts = text.split("|")
            if len(parts) < 5 + len(genres):
                sink.reject(path.name, number, "(columns)",
                            f"expected {5 + len(genres)} '|'-separated columns, found {len(parts)}")
                continue
            released = None
            if parts[2].strip():
                try:
                    released = datetime.strptime(parts[2].strip(), "%d-%b-%Y").replace(tzinfo=UTC)
                except ValueError:
                    sink.reject(path.name, number, "release_date",
                                f"'{parts[2]}' is not a date like 01-Jan-1995")
                    continue
            flags = parts[5:5 + len(genres)]
            names = [g for g, f in zip(genres, flags, strict=True) if f.strip() == "1"]
            yield number, parts[0].strip(), parts[1].strip(), names, released, parts[4].strip()

    def _items_csv(self, path: Path, sink: ImportSink) -> Iterator[Movie]:
        for number, parts in _csv_records(path, sink, ("movieId", "title", "genres")):
            if len(parts) < 3:
                sink.reject(path.name, number, "(columns)", "expected movieId,title,genres")
                continue
            title = parts[1].strip()
            genres = [g for g in parts[2].split("|") if g and g != "(no genres listed)"]
            yield number, parts[0].strip(), title, genres, _year(_YEAR.search(title)), ""

    def _items_atomic(self, path: Path, sink: ImportSink) -> Iterator[Movie]:
        lines = iter_lines(path, sink, skip=0)
        header: list[str] = []
        for number, text in lines:
            parts = text.split("\t")
            if not header:
                header = [h.split(":")[0] for h in parts]
                continue
            rec = dict(zip(header, parts, strict=False))
            year = rec.get("release_year", "").strip()
            released = _year(re.match(r"(\d{4})$", year)) if year else None
            yield (number, rec.get("item_id", "").strip(), rec.get("movie_title", "").strip(),
                   rec.get("class", "").split(), released, "")


def _year(match: re.Match[str] | None) -> datetime | None:
    return datetime(int(match.group(1)), 1, 1, tzinfo=UTC) if match else None


def _csv_records(path: Path, sink: ImportSink,
                 header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV file with a header line, numbered by their physical line."""
    for number, text in iter_lines(path, sink):
        parts = next(csv.reader(io.StringIO(text)))
        if number == 1 and [p.strip() for p in parts[:len(header)]] == list(header):
            continue
        yield number, parts
