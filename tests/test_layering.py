"""The package's layers: no import circles, and the lower layers (data, nn, losses, the metrics)
never reach up into the engine, the run-level evaluation or the CLI. Read from the source's own
import statements (function-level ones too), so a new circle fails here before it grows."""
import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ganforge"
UPPER = ("ganforge.training", "ganforge.run_eval", "ganforge.cli")
LOWER = ("ganforge.data", "ganforge.nn", "ganforge.losses", "ganforge.metrics", "ganforge.files",
         "ganforge.errors", "ganforge.models", "ganforge.report")


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                stem = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                # `from pkg import mod` points at mod; `from pkg import name` at pkg
                names = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
            else:
                continue
            for name in names:
                # the deepest module of ours that the name points into
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod and name.startswith("ganforge"):
                    graph[mod].add(name)
    return graph


def _cycle(graph):
    state = {}

    def visit(m, stack):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n, stack + [n])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_no_import_circles():
    graph = _graph()
    assert not (found := _cycle(graph)), "import circle: " + " -> ".join(found)


def test_lower_layers_never_import_the_engine_or_the_cli():
    bad = [(m, n) for m, targets in _graph().items() if m.startswith(LOWER)
           for n in targets if n.startswith(UPPER)]
    assert not bad, bad


def test_models_never_load_data():
    # The engine hands a model what it needs (GANModel.prepare); a model that loads its own data
    # would read it again in every process and could read different data than the run trains on.
    offenders = [p.name for p in (SRC / "models").glob("*.py") if "load_data" in p.read_text()]
    assert not offenders, offenders


def test_importing_a_metric_loads_neither_the_engine_nor_the_launcher():
    code = ("import sys, ganforge.metrics.frechet, ganforge.metrics.evaluate; "
            "print(sorted(m for m in sys.modules if m.startswith(('ganforge.training', 'ganforge.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
