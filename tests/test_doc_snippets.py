"""Every python block of README.md and docs/ is complete code that a test runs.

A block is either marked `<!-- run -->` on the line before it, and then this file runs it
against the session's servers (`NATS_URL`, `TEMPORAL_ADDRESS`), or it is made of whole
top-level statements of a tested file in examples/, copied verbatim, with the imports it
needs. Either way it must compile on its own and use no name it does not define or import.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import os
import re
import signal
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_BLOCK = re.compile(r"^(<!-- run -->\n)?```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A hang guard for a run snippet, not a speed goal.
RUN_WITHIN = 90


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    code: str
    run: bool

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in CODE_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(2))
            found.append(Snippet(doc.name, line, match.group(2), bool(match.group(1))))
    return found


def stripped(text: str) -> str:
    """Non-blank lines without their indentation."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) + "\n"


def undefined_names(code: str) -> set[str]:
    """Names the code uses but neither defines, imports nor gets from builtins."""
    # Annotations count: Temporal and pydantic read them at run time.
    table = symtable.symtable(code.replace("from __future__ import annotations", ""), "s", "exec")
    known = set(dir(builtins))
    known |= {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    known |= {s.get_name() for s in table.get_symbols() if s.is_namespace()}
    missing: set[str] = set()

    def walk(scope: symtable.SymbolTable, top: bool) -> None:
        for symbol in scope.get_symbols():
            outside = (
                not (symbol.is_assigned() or symbol.is_imported()) if top else symbol.is_global()
            )
            if symbol.is_referenced() and outside and symbol.get_name() not in known:
                missing.add(symbol.get_name())
        for child in scope.get_children():
            walk(child, False)

    walk(table, True)
    return missing


def imported(statement: ast.stmt) -> set[str] | None:
    """The imports of an import statement (or of a `with` block of imports), else None."""
    if isinstance(statement, ast.With):
        parts = [imported(s) for s in statement.body]
        return None if None in parts else set().union(*parts)  # type: ignore[arg-type]
    if isinstance(statement, ast.Import):
        return {f"import {a.name} as {a.asname}" for a in statement.names}
    if isinstance(statement, ast.ImportFrom):
        return {f"from {statement.module} import {a.name} as {a.asname}" for a in statement.names}
    return None


def source_lines(code: str, statement: ast.stmt) -> str:
    """A statement's source with its decorators, stripped of indentation."""
    first = min([statement.lineno] + [d.lineno for d in getattr(statement, "decorator_list", [])])
    assert statement.end_lineno is not None
    return stripped("\n".join(code.splitlines()[first - 1 : statement.end_lineno]))


def is_from(code: str, example: Path) -> bool:
    """Whether the snippet is whole top-level statements of `example`, verbatim."""
    source = example.read_text()
    tree = ast.parse(source)
    imports = set().union(*(imported(s) or set() for s in tree.body))
    statements = {ast.dump(s) for s in tree.body}
    for statement in ast.parse(code).body:
        names = imported(statement)
        if names is not None:
            whole = names <= imports
        else:
            verbatim = source_lines(code, statement) in stripped(source)
            whole = verbatim and ast.dump(statement) in statements
        if not whole:
            return False
    return True


def problem(snippet: Snippet) -> str | None:
    """What keeps the snippet from being complete, tested code; None if nothing does."""
    try:
        compile(snippet.code, str(snippet), "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"does not compile on its own ({e.msg}, line {e.lineno})"
    missing = undefined_names(snippet.code)
    if missing:
        return f"uses names it neither defines nor imports: {sorted(missing)}"
    if snippet.run:
        return None
    if not any(is_from(snippet.code, p) for p in (ROOT / "examples").glob("*.py")):
        return "is not verbatim code of an example and is not marked <!-- run -->"
    return None


ALL = snippets()


@pytest.mark.parametrize("snippet", ALL, ids=str)
def test_doc_snippet_is_complete_tested_code(snippet: Snippet):
    """The snippet compiles alone, imports what it uses, and is run or is example code."""
    assert problem(snippet) is None, f"{snippet}: {problem(snippet)}\n{snippet.code}"


@pytest.mark.parametrize("snippet", [s for s in ALL if s.run], ids=str)
async def test_run_snippet_succeeds(snippet: Snippet, nats_url, temporal_address, tmp_path):
    """A block marked to be run exits 0 against real servers, from the project root."""
    env = {**os.environ, "NATS_URL": nats_url, "TEMPORAL_ADDRESS": temporal_address}
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", snippet.code, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), RUN_WITHIN)
    assert process.returncode == 0 or _temporal_teardown_abort(process.returncode, out), (
        f"{snippet} failed:\n{out.decode()}"
    )


def _temporal_teardown_abort(returncode: int | None, out: bytes) -> bool:
    """The program ran to its end, then the interpreter aborted while finalizing because a
    thread of temporalio's native core called back into it (a known temporalio problem,
    sdk-python issue 300; docs/troubleshooting.md): not the snippet's failure."""
    return (
        returncode == -signal.SIGABRT
        and b"Python runtime state: finalizing" in out
        and b"PyGILState_Release" in out
    )


def test_no_python_block_escapes_the_check():
    """Every fence opening Python code (indented, or tagged py/python3) is one checked here."""
    fences = sum(
        len(re.findall(r"^\s*```\s*(?:py|python|python3|pycon)\b", doc.read_text(), re.M))
        for doc in DOCS
    )
    assert fences == len(ALL), "write Python blocks as a ```python fence at the line start"


def test_docs_show_code_of_both_kinds():
    """The check looks at something: the docs hold example code and run blocks."""
    assert sum(not s.run for s in ALL) >= 8
    assert any(s.run for s in ALL)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # Negative controls: each way a snippet can go wrong is caught.
        ("import sys\nprint(sys.argv", "does not compile"),
        ("await asyncio.sleep(1)\n", "does not compile"),
        ("print(TaskStates())\n", "neither defines nor imports: ['TaskStates']"),
        ("def f(x: StreamEvent) -> None: ...\n", "neither defines nor imports: ['StreamEvent']"),
        ("import os\nprint(os.sep)\n", "not verbatim code of an example"),
        ("from examples.fake_llm import REPLY, nothing\n", "not verbatim code of an example"),
        ("import asyncio\n\nSTEP_DELAY = 0.2\n", "not verbatim code of an example"),
    ],
)
def test_snippet_check_catches_each_problem(code: str, expected: str):
    """Broken, incomplete, edited or unknown code is refused with the reason."""
    assert expected in (problem(Snippet("t.md", 1, code, run=False)) or "")


def test_snippet_check_catches_drift_and_fragments():
    """An edited line or part of a function is refused; the same code whole is accepted."""
    whole = (ROOT / "examples" / "follow_tokens.py").read_text()
    start = whole.index("import sys")
    code = whole[start : whole.index("\n\n\ndef main")] + "\n"
    code = code.replace("import argparse\nimport asyncio\n", "")
    assert problem(Snippet("t.md", 1, code, run=False)) is None
    drifted = code.replace('stream="token-stream"', 'stream="token_stream"')
    assert "not verbatim" in (problem(Snippet("t.md", 1, drifted, run=False)) or "")
    fragment = code[: code.index("        if task is None")]
    assert problem(Snippet("t.md", 1, fragment, run=False)) is not None
