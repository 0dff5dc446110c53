"""The risk table (docs/hazards.md) against the code: every test and rule it names exists, every rule is named.

The rules of the safety core are found from the code, not from a list here: every cause code
(the first argument of a ``Cause(...)`` call in controller/safety/*.py; for an f-string, its
constant prefix before the colon) and every ``SafetyCore._cmd_*`` command rule. The rules that
act rather than trip are listed in ``ACTING_RULES`` and checked against the class, so the list
cannot outlive a rename. Test ids are resolved with ast, without importing the test modules.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAZARDS_MD = ROOT / "docs" / "hazards.md"
SAFETY_DIR = ROOT / "controller" / "safety"
CORE = SAFETY_DIR / "core.py"
CORE_CLASS = "SafetyCore"

COLUMNS = ("id", "hazard", "hazardous situation", "cause", "risk control", "verified by", "residual risk")
#: The SafetyCore methods that act rather than trip: the warn zone (buzzer, one slowdown step),
#: the overspeed correction (re-sends the cap), the ramps (never above the cap), the controlled
#: stop, the latching trip, the patient's own closing speed in the stop distance and the belt's direction.
#: Each must still be a method of the class.
ACTING_RULES = ("_update_warn", "_track_overspeed", "_track_override", "_ramp", "_ramp_down", "controlled_stop", "trip",
                "closing_speed_mps", "carries_toward_edge")

CODE_SPAN = re.compile(r"`([^`]+)`")
CAUSE_REF = re.compile(r"cause:([a-z][a-z0-9_]*)")
CORE_REF = re.compile(rf"{CORE_CLASS}\.([A-Za-z_][A-Za-z0-9_]*)")
CODE_REF = re.compile(r"([A-Za-z0-9_./-]+)::([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
ROW_ID = re.compile(r"H[1-9][0-9]*")


class TableError(ValueError):
    """The markdown holds no risk table of the expected shape."""


@dataclass(frozen=True)
class Row:
    """One hazard: its cells by column name, and the line it came from."""

    line: int
    cells: dict[str, str]

    @property
    def id(self) -> str:
        return self.cells["id"]

    @property
    def where(self) -> str:
        return f"row {self.id or '(no id)'} (line {self.line})"

    @property
    def controls(self) -> list[str]:
        return CODE_SPAN.findall(self.cells["risk control"])

    @property
    def tests(self) -> list[str]:
        return CODE_SPAN.findall(self.cells["verified by"])


# ---- the table ----------------------------------------------------------------------------


def split_cells(line: str) -> list[str]:
    """The cells of a markdown table line (``\\|`` is a pipe inside a cell)."""
    body = line.strip()
    body = body.removeprefix("|")
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", body)]


def parse_table(text: str) -> list[Row]:
    """The rows of the first table whose header is ``COLUMNS``; TableError names what is wrong."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and tuple(c.lower() for c in split_cells(line)) == COLUMNS:
            break
    else:
        raise TableError(f"no table with the columns {' | '.join(COLUMNS)}")
    if i + 1 >= len(lines) or not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?", lines[i + 1].strip()):
        raise TableError(f"line {i + 2}: the header's separator line (|---|...) is missing")
    rows = []
    for n, line in enumerate(lines[i + 2:], start=i + 3):
        if not line.lstrip().startswith("|"):
            break
        cells = split_cells(line)
        if len(cells) != len(COLUMNS):
            raise TableError(f"line {n}: {len(cells)} cells, expected {len(COLUMNS)} ({', '.join(COLUMNS)})")
        rows.append(Row(n, dict(zip(COLUMNS, cells))))
    return rows


# ---- the code -----------------------------------------------------------------------------


def _callee_is_cause(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Name) and f.id == "Cause") or (isinstance(f, ast.Attribute) and f.attr == "Cause")


def _code_of(arg: ast.expr) -> str | None:
    """A cause code from a plain string, or the constant prefix before ':' of an f-string."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        prefix = ""
        for part in arg.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            prefix += part.value
        else:
            return prefix  # an f-string without placeholders
        if ":" in prefix:
            return prefix.split(":", 1)[0]
    return None


def causes_in_source(source: str, where: str) -> tuple[dict[str, list[str]], list[str]]:
    """Cause codes of every ``Cause(...)`` call: {code: [file:line, ...]}, and the calls whose code cannot be named."""
    codes: dict[str, list[str]] = {}
    problems = []
    for node in ast.walk(ast.parse(source, where)):
        if not (isinstance(node, ast.Call) and _callee_is_cause(node)):
            continue
        arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "code"), None)
        code = None if arg is None else _code_of(arg)
        if code and re.fullmatch(r"[a-z][a-z0-9_]*", code):
            codes.setdefault(code, []).append(f"{where}:{node.lineno}")
        else:
            problems.append(f"{where}:{node.lineno}: a Cause whose code is not a string literal or an f-string "
                            "with a constant 'code:' prefix cannot be traced to the risk table")
    return codes, problems


def safety_cause_codes() -> tuple[dict[str, list[str]], list[str]]:
    """Every cause code in controller/safety/*.py."""
    codes: dict[str, list[str]] = {}
    problems: list[str] = []
    for path in sorted(SAFETY_DIR.glob("*.py")):
        found, bad = causes_in_source(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
        for code, places in found.items():
            codes.setdefault(code, []).extend(places)
        problems += bad
    return codes, problems


def class_methods(source: str, class_name: str) -> set[str]:
    """Names of the functions defined in a class's body (methods and properties)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    raise LookupError(f"no class {class_name}")


def core_rules(causes: set[str], methods: set[str]) -> tuple[set[str], list[str]]:
    """The rules every hazard table must name, as the table names them, and acting rules gone from the class."""
    rules = {f"cause:{c}" for c in causes}
    rules |= {f"{CORE_CLASS}.{m}" for m in methods if m.startswith("_cmd_")}
    rules |= {f"{CORE_CLASS}.{m}" for m in ACTING_RULES if m in methods}
    gone = [f"{CORE_CLASS}.{m} is in ACTING_RULES but no longer a method of {CORE_CLASS}: update the list and "
            "the table" for m in ACTING_RULES if m not in methods]
    return rules, gone


class _Sources:
    """Parsed files under a root, each parsed once."""

    def __init__(self, root: Path):
        self.root = root
        self._trees: dict[str, ast.Module | None] = {}

    def tree(self, rel: str) -> ast.Module | None:
        if rel not in self._trees:
            path = self.root / rel
            self._trees[rel] = ast.parse(path.read_text(encoding="utf-8"), rel) if path.is_file() else None
        return self._trees[rel]


def _find(body: list[ast.stmt], name: str) -> ast.AST | None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
    return None


def node_id_problem(sources: _Sources, node_id: str) -> str | None:
    """Why ``tests/...py::test_x`` or ``tests/...py::TestC::test_x`` does not name a test, or None."""
    if "[" in node_id:
        return f"{node_id}: name the test without its parametrize brackets"
    path, _, rest = node_id.partition("::")
    names = rest.split("::") if rest else []
    if not (path.startswith("tests/") and path.endswith(".py")) or len(names) not in (1, 2):
        return f"{node_id}: not a test id (tests/...py::test_name or tests/...py::TestClass::test_name)"
    tree = sources.tree(path)
    if tree is None:
        return f"{node_id}: no file {path}"
    if len(names) == 1:
        node = _find(tree.body, names[0])
        ok = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and names[0].startswith("test")
        return None if ok else f"{node_id}: no module-level def {names[0]} in {path}"
    cls = _find(tree.body, names[0])
    if not (isinstance(cls, ast.ClassDef) and names[0].startswith("Test")):
        return f"{node_id}: no class {names[0]} in {path}"
    method = _find(cls.body, names[1])
    ok = isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and names[1].startswith("test")
    return None if ok else f"{node_id}: no method {names[1]} in {path}::{names[0]}"


def code_ref_problem(sources: _Sources, path: str, name: str) -> str | None:
    """Why ``path.py::name`` (or ``Class.method``), or ``path::Key`` of a unit file, names nothing, or None."""
    if not (sources.root / path).is_file():
        return f"{path}::{name}: no file {path}"
    if path.endswith(".py"):
        body = sources.tree(path).body
        for part in name.split("."):
            node = _find(body, part)
            if node is None:
                return f"{path}::{name}: {path} defines no {name}"
            body = node.body if isinstance(node, ast.ClassDef) else []
        return None
    text = (sources.root / path).read_text(encoding="utf-8")
    if not re.search(rf"^\s*{re.escape(name)}\s*=", text, re.MULTILINE):
        return f"{path}::{name}: {path} sets no {name}="
    return None


def named_rules(row: Row) -> tuple[list[str], list[str]]:
    """The rules a row's risk control names (``cause:x``, ``SafetyCore.m``, ``path::name``), and malformed ones."""
    rules, bad = [], []
    for span in row.controls:
        if CAUSE_REF.fullmatch(span) or CORE_REF.fullmatch(span) or CODE_REF.fullmatch(span):
            rules.append(span)
        elif span.startswith(("cause", CORE_CLASS)) or "::" in span:
            bad.append(f"{row.where}: `{span}` is not a rule name (cause:code, {CORE_CLASS}.method, path::name)")
    return rules, bad


# ---- the checks -------------------------------------------------------------------------------


def row_problems(rows: list[Row]) -> list[str]:
    """Ids, residual risks, at least one rule and one test per row."""
    out = []
    ids = [r.id for r in rows]
    if not rows:
        out.append("the table has no rows")
    for row in rows:
        if not ROW_ID.fullmatch(row.id):
            out.append(f"{row.where}: the id must be H1, H2, ...")
        elif ids.count(row.id) > 1:
            out.append(f"{row.where}: the id {row.id} is used {ids.count(row.id)} times")
        for col in ("hazard", "hazardous situation", "cause"):
            if not row.cells[col]:
                out.append(f"{row.where}: empty '{col}'")
        if not row.cells["residual risk"]:
            out.append(f"{row.where}: no residual risk")
        if not row.tests:
            out.append(f"{row.where}: no test in 'verified by'")
        rules, bad = named_rules(row)
        out += bad
        if not rules:
            out.append(f"{row.where}: its risk control names no rule")
    return out


def missing_tests(rows: list[Row], root: Path) -> list[str]:
    """Every test id that resolves to no test, naming its row."""
    sources = _Sources(root)
    out = []
    for row in rows:
        for node_id in row.tests:
            problem = node_id_problem(sources, node_id)
            if problem:
                out.append(f"{row.where}: {problem}")
    return out


def missing_rules(rows: list[Row], root: Path, causes: set[str], methods: set[str]) -> list[str]:
    """Every rule a row names that the code does not have, naming its row."""
    sources = _Sources(root)
    out = []
    for row in rows:
        for rule in named_rules(row)[0]:
            if m := CAUSE_REF.fullmatch(rule):
                if m.group(1) not in causes:
                    out.append(f"{row.where}: {rule}: no Cause with this code in controller/safety/*.py")
            elif m := CORE_REF.fullmatch(rule):
                if m.group(1) not in methods:
                    out.append(f"{row.where}: {rule}: no method {m.group(1)} in {CORE_CLASS}")
            elif m := CODE_REF.fullmatch(rule):
                problem = code_ref_problem(sources, m.group(1), m.group(2))
                if problem:
                    out.append(f"{row.where}: {problem}")
    return out


def unnamed_rules(rows: list[Row], required: set[str]) -> list[str]:
    """Every rule of the core that no row's risk control names."""
    named = {rule for row in rows for rule in named_rules(row)[0]}
    return [f"{rule} is named by no row's risk control" for rule in sorted(required - named)]


# ---- the table in docs/hazards.md -------------------------------------------------------------


def _rows() -> list[Row]:
    return parse_table(HAZARDS_MD.read_text(encoding="utf-8"))


def _core() -> tuple[set[str], set[str]]:
    codes, _ = safety_cause_codes()
    return set(codes), class_methods(CORE.read_text(encoding="utf-8"), CORE_CLASS)


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s) in {HAZARDS_MD.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_every_row_has_an_id_a_rule_a_test_and_a_residual_risk():
    problems = row_problems(_rows())
    assert not problems, _report(problems)


def test_every_test_the_table_names_exists():
    problems = missing_tests(_rows(), ROOT)
    assert not problems, _report(problems)


def test_every_rule_the_table_names_exists_in_the_code():
    causes, methods = _core()
    problems = missing_rules(_rows(), ROOT, causes, methods)
    assert not problems, _report(problems)


def test_every_cause_code_of_the_safety_core_can_be_named():
    codes, problems = safety_cause_codes()
    assert not problems, "\n".join(problems)
    # The causes the README's table lists, and more: the search found the rules, not nothing.
    assert {"stop_zone", "sensor_stale", "link_fault", "estop", "exception"} <= set(codes), sorted(codes)


def test_every_rule_of_the_safety_core_is_named_by_a_row():
    causes, methods = _core()
    required, gone = core_rules(causes, methods)
    problems = gone + unnamed_rules(_rows(), required)
    assert not problems, _report(problems)


# ---- the checks can fail -----------------------------------------------------------------------


SELF_CHECK_TABLE = """\
Some text before the table.

| id | hazard | hazardous situation | cause | risk control | verified by | residual risk |
|---|---|---|---|---|---|---|
| H1 | a | b | c | `cause:stop_zone`, `cause:no_such_cause`, `SafetyCore.no_such_rule`, `controller/config.py::stop_distance_mm`, `controller/config.py::no_such_function` | `tests/unit/test_safety.py::test_controller_comes_up_stopped_with_relay_off`<br>`tests/unit/test_safety.py::test_no_such_test`<br>`tests/unit/test_nowhere.py::test_gone`<br>`tests/unit/test_safety.py::test_bad_readings_trip_a_running_belt[x]` | some |
| H1 | a | b | c | no rule here | none | |
"""


def test_the_checks_report_a_missing_test_and_a_missing_rule():
    rows = parse_table(SELF_CHECK_TABLE)
    assert [r.id for r in rows] == ["H1", "H1"]
    causes, methods = {"stop_zone", "estop"}, {"trip", "_cmd_stop"}

    tests = "\n".join(missing_tests(rows, ROOT))
    assert "row H1 (line 5): tests/unit/test_safety.py::test_no_such_test: no module-level def" in tests
    assert "tests/unit/test_nowhere.py::test_gone: no file tests/unit/test_nowhere.py" in tests
    assert "without its parametrize brackets" in tests
    assert "test_controller_comes_up_stopped_with_relay_off" not in tests

    rules = "\n".join(missing_rules(rows, ROOT, causes, methods))
    assert "row H1 (line 5): cause:no_such_cause: no Cause with this code" in rules
    assert "SafetyCore.no_such_rule: no method no_such_rule in SafetyCore" in rules
    assert "controller/config.py::no_such_function: controller/config.py defines no no_such_function" in rules
    assert "cause:stop_zone:" not in rules and "stop_distance_mm" not in rules

    rows_report = "\n".join(row_problems(rows))
    assert "the id H1 is used 2 times" in rows_report
    for words in ("row H1 (line 6): no residual risk", "row H1 (line 6): no test",
                  "row H1 (line 6): its risk control names no rule"):
        assert words in rows_report

    required, gone = core_rules(causes, methods)
    assert "cause:estop is named by no row's risk control" in unnamed_rules(rows, required)
    assert "SafetyCore._cmd_stop is named by no row's risk control" in unnamed_rules(rows, required)
    assert any("SafetyCore._update_warn is in ACTING_RULES but no longer a method" in g for g in gone)


def test_cause_codes_are_found_in_plain_strings_and_f_string_prefixes():
    source = (
        "Cause('stop_zone', 'm')\n"
        "inputs.Cause(f'sensor_stale:{sid}', 'm')\n"
        "Cause(code='estop', message='m')\n"
        "Cause(some_code, 'm')\n"
        "Cause(f'{sid}:stale', 'm')\n"
        "Causes('not_a_cause')\n"
    )
    codes, problems = causes_in_source(source, "x.py")
    assert set(codes) == {"stop_zone", "sensor_stale", "estop"}
    assert [p.split(":")[1] for p in problems] == ["4", "5"]


def test_a_table_of_the_wrong_shape_is_refused_naming_the_line():
    try:
        parse_table("| id | hazard |\n|---|---|\n| H1 | x |\n")
    except TableError as exc:
        assert "no table with the columns" in str(exc)
    else:
        raise AssertionError("a table without the columns was accepted")
    short = SELF_CHECK_TABLE.replace("| H1 | a | b | c | no rule here | none | |", "| H1 | a | b |")
    try:
        parse_table(short)
    except TableError as exc:
        assert "line 6: 3 cells, expected 7" in str(exc)
    else:
        raise AssertionError("a row with too few cells was accepted")
