"""The live page's JSON-patch applier (static/patch.js) in headless Chromium, on the corpus
of cases shared with the Python applier (tests/core/patch_cases.json): the same documents,
the same failures, and no key ever reaches a JavaScript prototype."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mistral_workflows.core.json_value import same_json
from tests.gateway.test_live_page import browser_page, chromium  # noqa: F401 (a fixture)

CASES = (Path(__file__).parent.parent / "core" / "patch_cases.json").read_text()
PATCH_JS = resources.files("mistral_workflows.gateway").joinpath("static", "patch.js").read_text()

# Runs every case on the applier loaded in the page; outcomes are JSON texts or errors.
RUN_CORPUS = """(text) => {
    const corpus = JSON.parse(text);  // JSON.parse makes "__proto__" an own key, as Python
    const outcome = (c) => {
        try {
            return {result: JSON.stringify(applyPatch(c.doc, c.ops))};
        } catch (e) {
            return {error: (e && e.constructor ? e.constructor.name : "?") + ": " + e.message};
        }
    };
    return {
        ok: corpus.ok.map(outcome),
        fail: corpus.fail.map(outcome),
        polluted: [{}.polluted, [].polluted, Object.prototype.polluted]
            .some((v) => v !== undefined),
    };
}"""

# The applier the live page had before: `test` ignored, keys looked up through prototypes.
OLD_APPLIER = """
function pointer(path) {
  if (path === "") return [];
  if (path[0] !== "/") throw new Error("bad JSON pointer " + path);
  return path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}
function parentOf(doc, tokens) {
  let node = doc;
  for (const t of tokens.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(t)] : node[t];
    if (node === undefined || node === null) throw new Error("missing member " + t);
  }
  return node;
}
function getAt(doc, path) {
  const tokens = pointer(path);
  if (tokens.length === 0) return doc;
  const parent = parentOf(doc, tokens);
  const last = tokens[tokens.length - 1];
  return Array.isArray(parent) ? parent[Number(last)] : parent[last];
}
function setAt(doc, path, value, insert) {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    if (insert) parent.splice(index, 0, value);
    else parent[index] = value;
  } else {
    parent[last] = value;
  }
  return doc;
}
function removeAt(doc, path) {
  const tokens = pointer(path);
  const parent = parentOf(doc, tokens);
  const last = tokens[tokens.length - 1];
  const old = Array.isArray(parent) ? parent.splice(Number(last), 1)[0] : parent[last];
  if (!Array.isArray(parent)) delete parent[last];
  return old;
}
function applyPatch(doc, ops) {
  for (const op of ops) {
    switch (op.op) {
      case "add": doc = setAt(doc, op.path, structuredClone(op.value), true); break;
      case "replace": doc = setAt(doc, op.path, structuredClone(op.value), false); break;
      case "remove": removeAt(doc, op.path); break;
      case "append":
        doc = setAt(doc, op.path, (getAt(doc, op.path) || "") + op.value, false); break;
      case "move": { const v = removeAt(doc, op.from); doc = setAt(doc, op.path, v, true); break; }
      case "copy": doc = setAt(doc, op.path, structuredClone(getAt(doc, op.from)), true); break;
      case "test": break;
      default: throw new Error("unknown patch op " + op.op);
    }
  }
  return doc;
}
"""


@dataclass
class Report:
    """How an applier did on the corpus: the names of the cases it got wrong."""

    wrong_results: list[str]
    not_refused: list[str]
    errors: list[str]  # what it said for the cases it refused
    polluted: bool


async def run_corpus(chromium_path: str, applier: str) -> Report:
    """Load `applier` into a blank page of a fresh Chromium and run the corpus on it."""
    cases = json.loads(CASES)
    async with browser_page(chromium_path) as page:
        await page.add_script_tag(content=applier)
        got: dict[str, Any] = await page.evaluate(RUN_CORPUS, CASES)
    wrong = []
    for case, outcome in zip(cases["ok"], got["ok"], strict=True):
        result = outcome.get("result")
        # JSON.stringify writes 1.0 as 1: numbers compare by value, everything else exactly.
        if result is None or not same_json(json.loads(result), case["result"], numeric=True):
            wrong.append(f"{case['name']}: {outcome}")
    refused = [o.get("error") for o in got["fail"]]
    missed = [c["name"] for c, e in zip(cases["fail"], refused, strict=True) if e is None]
    errors = [e for e in refused if e is not None]
    return Report(wrong, missed, errors, got["polluted"])


async def test_live_page_applier_agrees_with_python_on_every_case(chromium: str) -> None:  # noqa: F811
    """Every valid case gives Python's document; every case Python refuses is refused with
    a PatchError naming the op; no prototype is touched."""
    report = await run_corpus(chromium, PATCH_JS)
    assert report.wrong_results == []
    assert report.not_refused == []
    assert all(e.startswith("PatchError: cannot apply op ") for e in report.errors), report.errors
    assert not report.polluted


async def test_negative_control_the_corpus_catches_the_old_applier(chromium: str) -> None:  # noqa: F811
    """The applier the page had before ignores `test` and walks into prototypes: the same
    check sees failed tests accepted, keys gone wrong and Object.prototype polluted."""
    report = await run_corpus(chromium, OLD_APPLIER)
    assert "test a different number" in report.not_refused
    assert "test true against 1" in report.not_refused
    assert any(w.startswith("add a __proto__ member") for w in report.wrong_results)
    assert report.polluted
