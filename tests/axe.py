"""axe-core in a Playwright page: inject the pinned axe.min.js, run it, fail with a readable list.

axe-core comes from npm (pinned in deploy/ensure-test-tools.sh, installed into var/node/, git-ignored).
Use it in any browser test, volunteer pages and admin pages alike:

    from tests.axe import assert_accessible
    assert_accessible(page, "review queue at 390 px")

All of axe's default rules run (WCAG 2.0/2.1/2.2 A and AA plus best practices); a page passes only with
no violation at all, whatever its impact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

AXE_JS = Path(__file__).resolve().parent.parent / "var" / "node" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page, *, exclude: list[str] = ()) -> list[dict]:
    """Run axe on the page as it is now; exclude takes CSS selectors of parts that are not ours to fix."""
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run deploy/ensure-test-tools.sh (installs npm's axe-core)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, not as a <script> tag: the pages' Content-Security-Policy
        # (script-src 'self') rightly refuses inline scripts, and the audit must see the page under it.
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    return page.evaluate(
        """async (exclude) => {
            const context = exclude.length ? {exclude: exclude.map(s => [s])} : document;
            const result = await axe.run(context, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 6).map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
                count: v.nodes.length,
            }));
        }""",
        list(exclude),
    )


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}, {v['count']} element(s)): {v['help']}")
        for node in v["nodes"]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary[:300]}")
    return "\n".join(lines)


def assert_accessible(page, name: str = "", *, exclude: list[str] = ()) -> None:
    violations = axe_violations(page, exclude=exclude)
    assert not violations, f"axe-core found violations on {name or page.url}:\n{describe(violations)}"
