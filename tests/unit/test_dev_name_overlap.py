"""studies/dev_name_overlap.py: does a dev split carved from train share rare names with train more than test does?"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies"))
import dev_name_overlap  # a script, not installed


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("label", "text"), *rows])


def review(rng: random.Random, movie: str) -> tuple[str, str]:
    label = rng.choice(["negative", "positive"])
    return label, f"I watched {movie} last week and it was {'great' if label == 'positive' else 'dull'} overall."


def test_a_dev_split_sharing_movies_with_train_shows_more_rare_names_than_a_disjoint_test_set(tmp_path, capsys):
    rng = random.Random(0)
    movies = [f"Movie {chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]  # "Movie Aa" ... "Movie Bn"
    train = [review(rng, movie) for movie in movies for _ in range(5)]  # five reviews of each training movie
    train += [review(rng, "Common Title") for _ in range(100)]  # a name far too frequent to count as rare
    write(tmp_path / "train.csv", train)
    write(tmp_path / "test.csv", [review(rng, f"Film {chr(65 + i)}x") for i in range(20)] * 2)

    assert dev_name_overlap.main([str(tmp_path), "--most", "5"]) == 0
    out = capsys.readouterr().out
    assert "270 train, 30 dev, 40 test texts" in out
    line = next(x for x in out.splitlines() if x.startswith("texts with"))
    dev, test = (float(part.split()[-2]) for part in line.split(": ", 1)[1].split(", "))
    assert test == 0.0 and dev > 40.0  # two thirds of the texts are reviews of a training movie


def test_shares_count_only_names_seen_a_few_times_in_train():
    train = ["Tom Hanks again", "Tom Hanks", "Meryl Streep", "Big Name"] + ["Big Name"] * 10
    found = dev_name_overlap.shares(train, {"dev": ["Tom Hanks wins", "Meryl Streep too", "Big Name", "nobody"]}, 5)
    assert found == {"dev": pytest.approx(1 / 4)}  # Tom Hanks: 2 texts; Meryl Streep: 1 (not rare); Big Name: 11


def test_a_folder_with_its_own_dev_file_is_refused_with_what_to_give(tmp_path, capsys):
    rng = random.Random(1)
    for name in ("train", "dev", "test"):
        write(tmp_path / f"{name}.csv", [review(rng, "Movie Alpha") for _ in range(20)])
    with pytest.raises(SystemExit) as exit_info:
        dev_name_overlap.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "expected train.csv and test.csv, with no dev.csv" in capsys.readouterr().err


def test_a_missing_folder_is_one_error_line(tmp_path, capsys):
    assert dev_name_overlap.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: dataset folder")
