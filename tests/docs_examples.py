"""The shell examples of README.md and docs/*.md, as a test runs them (tests/e2e/test_docs_examples.py).

The conventions, which docs/tests.md states for writers:

- The README's tour is the Quickstart's, verbatim (tests/unit/test_docs_tour.py): it runs there.
- Every fenced ```bash block is an example and runs, in page order, in one bash per page (so a
  variable set in one block is there in the next), from the repository root, against a local stack
  started for the test. Its addresses are the documented defaults (127.0.0.1:8000 the API, :8001
  moto, :8002 OpenSearch, :8003 the CDN), swapped for the test stack's.
- A block that cannot run here says so in an HTML comment on the line above it:
  `<!-- example: not-run, <why> -->`. The test lists those blocks, so none is skipped silently.
- A command is a line (with its `\\` continuations and open quotes); its shown output is the comment
  lines right under it that start with `# ` and then `{`, `[`, `"`, a digit or `http`, and the
  comment lines after those that start with `#  ` (two spaces: a continuation). Other comments are
  prose.
- An output is checked in substance: each `"key": value` shown with a plain value (a string, number,
  true, false or null) must be in the answer (at any depth) with that value; a string with `…` matches
  any text in place of each `…`; a key shown with `…`, an object or a list must be there. A shown
  output that is not JSON (a status code, a URL) must match the answer's first line the same way. A
  leading status code (`202 {…}`) is prose unless the command prints it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = re.compile(r"<!--\s*example:\s*not-run,\s*(?P<why>.+?)\s*-->")
DEFAULT_PORTS = {"api": 8000, "moto": 8001, "opensearch": 8002, "cdn": 8003}
OUTPUT_START = re.compile(r"^# (?=[{\[\"0-9]|http)")
ELLIPSIS = "…"


@dataclass
class Command:
    text: str
    expected: str = ""
    line: int = 0


@dataclass
class Block:
    page: str
    line: int
    commands: list[Command] = field(default_factory=list)
    not_run: str | None = None  # why, when the block is marked not-run
    excerpt: bool = False  # in the README's copy of the Quickstart's tour (run there; test_docs_tour.py)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _open_quotes(text: str) -> bool:
    """Whether bash would still be inside a quoted string at the end of `text` (no heredocs here)."""
    quote = ""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and not quote:
            break  # a comment to the end of the line (good enough: no '#' inside words here)
    return bool(quote)


def parse_block(page: str, start_line: int, lines: list[str], not_run: str | None) -> Block:
    block = Block(page=page, line=start_line, not_run=not_run)
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        text = line
        first = index
        while (text.rstrip().endswith("\\") or _open_quotes(text)) and index + 1 < len(lines):
            index += 1
            text += "\n" + lines[index]
        index += 1
        expected: list[str] = []
        while index < len(lines) and OUTPUT_START.match(lines[index]):
            expected.append(lines[index][2:])
            index += 1
            while index < len(lines) and lines[index].startswith("#  "):
                expected.append(lines[index][2:].strip())
                index += 1
        block.commands.append(Command(text=text, expected=" ".join(expected), line=start_line + 1 + first))
    return block


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = str(path.relative_to(ROOT))
    found: list[Block] = []
    index = 0
    in_tour = False
    while index < len(lines):
        if lines[index].startswith(("<!-- the tour begins", "<!-- the tour ends")):
            in_tour = lines[index].startswith("<!-- the tour begins")
        if lines[index].strip() == "```bash":
            above = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = NOT_RUN.search(above)
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip().startswith("```"))
            found.append(parse_block(page, index + 1, lines[index + 1 : end], marker["why"] if marker else None))
            found[-1].excerpt = in_tour and page == "README.md"
            index = end
        index += 1
    return found


def with_ports(text: str, ports: dict[str, int]) -> str:
    for name, default in DEFAULT_PORTS.items():
        text = re.sub(rf"(?<=127\.0\.0\.1:){default}\b", str(ports[name]), text)
    return text


# --- checking an answer against its shown output -------------------------------------------------

_KEY_VALUE = re.compile(
    r'"(?P<key>[A-Za-z0-9_\-]+)"\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:e-?\d+)?|true|false|null|…|\{|\[)'
)


def expectations(shown: str) -> list[tuple[str, Any]]:
    """(key, value) pairs a shown JSON-ish output states; value `...` (Ellipsis) when only the key counts."""
    found: list[tuple[str, Any]] = []
    for match in _KEY_VALUE.finditer(shown):
        raw = match["value"]
        if raw in (ELLIPSIS, "{", "["):
            found.append((match["key"], ...))
        else:
            found.append((match["key"], json.loads(raw)))
    return found


def text_matches(pattern: str, actual: str) -> bool:
    """`pattern` with each `…` standing for any text (also none)."""
    regex = ".*?".join(re.escape(part) for part in pattern.split(ELLIPSIS))
    return re.fullmatch(regex, actual, flags=re.DOTALL) is not None


def _walk(value: Any) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            pairs.append((key, inner))
            pairs.extend(_walk(inner))
    elif isinstance(value, list):
        for inner in value:
            pairs.extend(_walk(inner))
    return pairs


def _same(expected: Any, actual: Any) -> bool:
    if expected is ...:
        return True
    if isinstance(expected, str) and isinstance(actual, str):
        return text_matches(expected, actual) if ELLIPSIS in expected else expected == actual
    if isinstance(expected, bool) or expected is None:
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return float(expected) == float(actual)
    return False


def first_json(output: str) -> Any:
    """The first JSON value in an output (after any headers or other lines)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", output):
        try:
            return decoder.raw_decode(output, match.start())[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON in the output")


def mismatches(shown: str, output: str) -> list[str]:
    """What the shown output states that the real output does not (empty: it matches in substance)."""
    body = re.sub(r"^\d{3}\s+(?=[{\[])", "", shown.strip())
    if body[:1] in "{[":
        try:
            actual = first_json(output)
        except ValueError:
            return [f"shown {body[:80]!r}, but the output has no JSON: {output[:300]!r}"]
        pairs = _walk(actual)
        return [
            f"{key}: shown {value!r}, not in the output"
            for key, value in expectations(body)
            if not any(name == key and _same(value, inner) for name, inner in pairs)
        ]
    first_line = output.strip().splitlines()[0] if output.strip() else ""
    pattern = body.split("   ")[0].strip()  # what follows three spaces is a note
    if text_matches(pattern, first_line.strip()):
        return []
    return [f"shown {pattern!r}, the output's first line is {first_line!r}"]
