"""The CLI contract: real invocations through Typer's runner and through the installed command."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from catalog.cli.app import app
from tests.helpers import cli

runner = CliRunner()


def family(photo, pics):  # type: ignore[no-untyped-def]
    original = photo("Olympus_C960.jpg", "o.jpg")
    shutil.copyfile(original, pics / "o-copy.jpg")
    with Image.open(original) as img:
        img.resize((320, 240)).save(pics / "o-small.jpg", quality=80)
    photo("Nikon_E950.jpg", "other.jpg")
    return {str(pics / n) for n in ("o.jpg", "o-copy.jpg", "o-small.jpg")}


def test_index_status_dupes_copies_json(db_path, photo, pics):
    members = family(photo, pics)
    (pics / "broken.jpg").write_bytes(b"nope")
    result = cli(db_path, "index", str(pics))
    assert result.exit_code == 0, result.output
    assert "3 added" not in result.output and "4 added" in result.output
    assert "broken.jpg: not an image" in result.output

    status = json.loads(cli(db_path, "status", "--format", "json").output)
    assert status["images"] == 4
    assert status["errors"] == [
        {"path": str(pics / "broken.jpg"), "error": "not an image (format not recognised)"}
    ]

    dupes = json.loads(cli(db_path, "dupes", "--method", "phash", "--format", "json").output)
    assert dupes["method"] == "phash" and dupes["threshold"] == 6
    assert [{im["path"] for im in g["images"]} for g in dupes["groups"]] == [members]
    assert all(os.path.isabs(im["path"]) and im["size"] > 0 for im in dupes["groups"][0]["images"])

    exact = json.loads(cli(db_path, "dupes", "--method", "exact", "--format", "json").output)
    assert [len(g["images"]) for g in exact["groups"]] == [2]

    copies = json.loads(cli(db_path, "copies", "--method", "dhash", "--format", "json").output)
    assert copies["method"] == "dhash"
    counts = {row["path"]: row["copies"] for row in copies["images"]}
    assert counts == {**{p: 2 for p in members}, str(pics / "other.jpg"): 0}


def test_text_and_csv_output(db_path, photo, pics):
    members = family(photo, pics)
    cli(db_path, "index", str(pics), "--methods", "ahash")
    text = cli(db_path, "dupes", "--method", "ahash").output
    assert "group 1: 3 images" in text and "1 group, 2 redundant copies" in text
    rows = list(csv.DictReader(io.StringIO(cli(db_path, "dupes", "-m", "ahash", "-f", "csv").output)))
    assert {r["path"] for r in rows} == members and {r["group"] for r in rows} == {"1"}
    copies = list(csv.DictReader(io.StringIO(cli(db_path, "copies", "-m", "ahash", "-f", "csv").output)))
    assert len(copies) == 4 and copies[0]["copies"] == "2"


def test_query_json(db_path, photo, pics, tmp_path):
    family(photo, pics)
    cli(db_path, "index", str(pics))
    probe = tmp_path / "probe.png"
    with Image.open(pics / "o.jpg") as img:
        img.resize((200, 150)).save(probe)
    data = json.loads(cli(db_path, "query", str(probe), "-m", "phash", "-k", "2", "--format", "json").output)
    assert data["method"] == "phash" and data["query"] == str(probe) and "hamming" in data["score_kind"]
    assert len(data["results"]) == 2
    assert data["results"][0]["path"].startswith(str(pics / "o"))
    assert data["results"][0]["score"] <= data["results"][1]["score"]


def test_errors_are_one_line_and_nonzero(db_path, tmp_path, make_image, pics):
    result = cli(db_path, "index", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "no such file or folder" in result.output
    assert "Traceback" not in result.output
    make_image("a.jpg")
    cli(db_path, "index", str(pics), "--methods", "ahash")
    for args, expected in (
        (["dupes", "--method", "nope"], "unknown method"),
        (["dupes", "--method", "whash"], "no whash signatures"),
        (["dupes", "--method", "ahash", "--threshold", "99"], "whole number"),
        (["index", str(pics), "--methods", "ahash,bogus"], "unknown method 'bogus'"),
        (["dupes", "--method", "exact", "-t", "1"], "takes no --threshold"),
        (["query", str(pics), "-m", "ahash"], "is a folder"),
        (["index", str(pics), "--format", "csv"], "'csv' is not one of 'text', 'json'"),
        (["status", "--format", "csv"], "'csv' is not one of 'text', 'json'"),
    ):
        result = cli(db_path, *args)
        assert result.exit_code == 2, args
        assert expected in result.output
    missing_db = runner.invoke(app, ["--db", str(tmp_path / "none.db"), "status"])
    assert missing_db.exit_code == 1 and "no catalogue" in missing_db.output


def test_installed_command_in_a_subprocess(tmp_path, make_image, pics):
    make_image("a.jpg", seed=1)
    shutil.copyfile(pics / "a.jpg", pics / "b.jpg")
    catalog_bin = Path(sys.executable).parent / "catalog"
    env = {**os.environ, "CATALOG_DB": str(tmp_path / "env.db")}
    run = subprocess.run(
        [catalog_bin, "index", str(pics)], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "env.db").exists()
    out = subprocess.run(
        [catalog_bin, "dupes", "-m", "exact", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert json.loads(out.stdout)["groups"][0]["images"][0]["path"] == str(pics / "a.jpg")
    module = subprocess.run(
        [sys.executable, "-m", "catalog", "status", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert json.loads(module.stdout)["images"] == 2
