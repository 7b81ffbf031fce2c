"""The tree's one-way rule, read from the source: models/ imports neither service/ nor clients/, service/ imports
nothing from clients/ but the web pages it serves (the tool commands reach the CLI as entry points), and no
module imports by a string (``__import__``, ``importlib.import_module``) to get round it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        calls = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
                 if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}
        found[str(path.relative_to(ROOT))] = names | {f"call:{c}" for c in calls & {"__import__", "import_module"}}
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def test_models_import_neither_the_server_nor_the_clients():
    bad = {f: sorted(n for n in names if _top(n) in ("service", "clients")) for f, names in _imports("models").items()}
    assert not {f: n for f, n in bad.items() if n}


def test_the_server_imports_no_client_but_the_web_pages():
    bad = {f: sorted(n for n in names if _top(n) == "clients" and n != "clients.web") for f, names in _imports("service").items()}
    assert not {f: n for f, n in bad.items() if n}


def test_no_string_imports():
    for package in ("service", "models", "clients"):
        bad = {f: sorted(n for n in names if n.startswith("call:")) for f, names in _imports(package).items()}
        assert not {f: n for f, n in bad.items() if n}
