"""The collector's policy of a server (app/gcpolicy.py): long-lived objects frozen after the
warm-up, so full collections walk only what requests allocate; pauses reported by /health."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

from tests.conftest import ROOT

# A process with the app imported (as a server has it) times a full collection before and
# after settle(), and says what settle() did; XIAOSAN_GC_FREEZE is set by the caller.
_PROBE = """
import json, gc
import app.main
from app import gcpolicy
before = min(gcpolicy.full_collection_ms() for _ in range(3))
settled = gcpolicy.settle("probe")
after = min(gcpolicy.full_collection_ms() for _ in range(3))
print(json.dumps({"before": before, "after": after, "settled": settled,
                  "frozen": gc.get_freeze_count()}))
"""


def _probe(freeze: str) -> dict:
    env = dict(os.environ, XIAOSAN_GC_FREEZE=freeze)
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_settle_freezes_the_imports_so_full_collections_walk_little():
    on = _probe("1")
    assert on["settled"]["frozen"] == on["frozen"] > 100_000  # the imports alone
    # A full collection walked them all before; now only what was made since.
    assert on["before"] > 5 * on["after"], on
    off = _probe("0")
    assert off["settled"] is None and off["frozen"] == 0
    assert off["after"] > 5 * on["after"], (off, on)


def test_health_reports_the_frozen_objects_and_the_pauses(live_server):
    for _ in range(150):  # the warm-up settles the collector when it is done
        with urllib.request.urlopen(f"{live_server}/health", timeout=10) as r:
            health = json.load(r)
        if health["warm"]["done"]:
            break
        time.sleep(0.2)
    gc_ = health["gc"]
    assert gc_["freeze"] is True
    assert gc_["frozen"] > 100_000
    assert set(gc_["pauses"]) == {"gen0", "gen1", "gen2"}
    assert gc_["pauses"]["gen0"]["n"] > 0  # watched from the start: requests allocate
    assert gc_["pauses"]["gen2"]["max_ms"] >= 0


def test_pauses_are_timed_per_generation():
    import gc

    from app import gcpolicy

    gcpolicy.watch()
    gcpolicy.watch()  # once per process, however often it is called
    assert gc.callbacks.count(gcpolicy._timer) == 1
    n = gcpolicy.stats()["pauses"]["gen2"]["n"]
    gc.collect()
    after = gcpolicy.stats()["pauses"]["gen2"]
    assert after["n"] == n + 1 and after["max_ms"] > 0
