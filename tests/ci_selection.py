"""A pytest plugin for tests/test_ci.py: which collected tests each of several `-m` expressions selects.

One collection answers for every expression (CROWDLENS_CI_EXPRESSIONS, a JSON list; "" selects everything),
written as JSON lines to CROWDLENS_CI_SELECTION: `[node id, [the expressions that select it]]`. Each test is
matched exactly as pytest's own `-m` does (`_pytest.mark.deselect_by_mark`: the expression evaluated on the
item's markers, after every `pytest_collection_modifyitems`, so tests/conftest.py's marks count); pytest is
pinned in constraints.txt, and test_ci.py checks the answer against a real `-m` collection.
"""

from __future__ import annotations

import json
import os

from _pytest.mark import MarkMatcher
from _pytest.mark.expression import Expression


def pytest_collection_finish(session) -> None:
    expressions = json.loads(os.environ["CROWDLENS_CI_EXPRESSIONS"])
    compiled = {e: Expression.compile(e) for e in expressions if e}
    with open(os.environ["CROWDLENS_CI_SELECTION"], "w") as out:
        for item in session.items:
            matcher = MarkMatcher.from_markers(item.iter_markers())
            chosen = [e for e in expressions if not e or compiled[e].evaluate(matcher)]
            out.write(json.dumps([item.nodeid, chosen]) + "\n")
