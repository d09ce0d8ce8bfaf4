"""Small multi-label files for the CLI tests: support tickets with 0-2 tags, a keyword per tag, in the user's own
column names (`body`, `tags`), as JSON Lines, CSV with a separator, or fastText lines."""

from __future__ import annotations

import json
from pathlib import Path

TAGS = ("billing", "bug", "refund", "urgent")
COLUMNS = ["--data.text_column", "body", "--data.label_column", "tags"]
_WORDS = {"billing": "invoice", "bug": "crash", "refund": "money", "urgent": "asap"}
_NOISE = ("please", "help", "today", "thanks", "team", "again")


def tag_rows(n: int, prefix: str = "") -> list[dict]:
    """`n` tickets; row i's tags follow i's bits, so every combination (none included) occurs."""
    rows = []
    for i in range(n):
        tags = [tag for bit, tag in enumerate(TAGS) if (i * 7 + i // 5) % 11 & (1 << bit)][:2]
        words = [_WORDS[t] for t in tags] + [_NOISE[(i + k) % len(_NOISE)] for k in range(3)] + [f"{prefix}n{i % 13}"]
        rows.append({"id": f"{prefix}{i}", "body": " ".join(words), "tags": tags})
    return rows


def write_tags(path: Path, rows: list[dict]) -> Path:
    """`rows` in the format of `path`'s suffix: .jsonl (a list), .csv (tags joined by '|'), .txt (fastText)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        lines = ["id,body,tags"] + [f"{r['id']},{r['body']},{'|'.join(r['tags'])}" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:  # fastText lines need at least one label
        lines = [" ".join(f"__label__{t}" for t in r["tags"] or ["urgent"]) + " " + r["body"] for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tag_files(root: Path, suffix: str = ".jsonl") -> dict[str, Path]:
    return {
        "train": write_tags(root / f"train{suffix}", tag_rows(240)),
        "val": write_tags(root / f"val{suffix}", tag_rows(60, prefix="v")),
        "test": write_tags(root / f"test{suffix}", tag_rows(60, prefix="t")),
    }
