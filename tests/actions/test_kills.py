"""``kill -9`` at random moments of ``resolve --apply``: the journal and the disk agree after, and undo
restores every byte. Its own file, so the test runner can run it beside ``test_settle.py`` (each file
stays on one worker)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys

import pytest

from tests.actions.test_settle import catalog, environment, journal_states, library, snapshot, trash_files
from tests.conftest import wait_until

#: Kills per run (the moments are drawn from a fixed seed: the same ones every run). 12, not the 20 of
#: BENCHMARKS.md's record: each round is about 4 s of processes, and the suite has 6 minutes.
ROUNDS = 12


@pytest.mark.interrupts
def test_kill_9_at_12_random_moments_of_apply_then_undo_restores_every_byte(tmp_path):
    env = environment(tmp_path)
    root = library(tmp_path / "lib", originals=20, copies=10, seed=1)
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root))
    before = snapshot(root)
    total = len(
        json.loads(catalog(db, env, "resolve", "--keep", "oldest", "--action", "trash", "-f", "json").stdout)[
            "actions"
        ]
    )
    rng = random.Random(20261125)
    command = [
        sys.executable,
        "-m",
        "catalog",
        "--db",
        str(db),
        "resolve",
        "--keep",
        "oldest",
        "--action",
        "trash",
        "--apply",
    ]
    killed = 0
    for round_ in range(ROUNDS):
        entries = sum(journal_states(db).values())
        moment = entries + rng.randint(1, total)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def reached(process: subprocess.Popen[bytes] = process, moment: int = moment) -> bool:
            return process.poll() is not None or sum(journal_states(db).values()) >= moment

        wait_until(reached, 60)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
        # The next command settles the half-done action: it either carries on, or undoes everything.
        if round_ % 2 == 0:
            catalog(db, env, "resolve", "--keep", "oldest", "--action", "trash", "--apply")
        catalog(db, env, "undo", "--all")
        states = journal_states(db)
        assert not states.get("pending") and not states.get("undoing") and not states.get("done"), states
        assert snapshot(root) == before, f"round {round_}"
        assert trash_files(env) == []
    print(f"{killed} of {ROUNDS} kills landed while actions were under way")
    assert killed >= ROUNDS * 3 // 4  # most kills landed while actions were under way
