"""The package's shape: no import cycle among gan_tpu's modules (imports at module level and
inside functions alike), no module over MAX_LINES lines; every subprocess the tests start has a timeout."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gan_tpu"
MAX_LINES = 400


def modules() -> dict[str, pathlib.Path]:
    """Dotted name -> file of every module in gan_tpu (a package is its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The gan_tpu modules `name` imports anywhere in its file: `import a.b`, `from a import b`
    (b a module, else a), relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_walk_sees_function_local_and_relative_imports():
    graph = import_graph()
    assert "gan_tpu.train" in graph["gan_tpu.commands"]  # imported inside cmd_train
    assert "gan_tpu.runs" in graph["gan_tpu.train"] and "gan_tpu.kaggle.api" in graph["gan_tpu.submission.submit"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_trainer_knows_neither_the_translator_nor_the_submission_writer():
    train = import_graph()["gan_tpu.train"]
    assert not {m for m in train if m == "gan_tpu.translator" or m.startswith("gan_tpu.submission")}, train


def test_no_module_is_over_max_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


def untimed_subprocesses(source: str) -> list[int]:
    """Lines of `source` that start a subprocess which could hang the suite: subprocess.run,
    call, check_call or check_output without `timeout=`; Popen in a file that never waits
    on a process with a timeout (`.wait(timeout=` or `.communicate(timeout=`)."""
    waits = ".wait(timeout=" in source or ".communicate(timeout=" in source
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess"):
            timed = any(k.arg == "timeout" for k in node.keywords)
            if (node.func.attr in ("run", "call", "check_call", "check_output") and not timed
                    or node.func.attr == "Popen" and not waits):
                lines.append(node.lineno)
    return lines


def test_every_subprocess_the_tests_start_has_a_timeout():
    assert untimed_subprocesses("import subprocess\nsubprocess.run(['x'])\nsubprocess.run(['x'], timeout=5)\n") == [2]
    assert untimed_subprocesses("import subprocess\np = subprocess.Popen(['x'])\n") == [2]
    assert untimed_subprocesses("import subprocess\np = subprocess.Popen(['x'])\np.wait(timeout=9)\n") == []
    found = {path.name: lines for path in sorted((ROOT / "tests").glob("*.py"))
             if (lines := untimed_subprocesses(path.read_text()))}
    assert not found, f"subprocesses without a timeout (file: lines): {found}"
