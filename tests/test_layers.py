"""The package's layers, lowest first: a module imports only from its own layer or from layers
below it, at the top of the file (README "Layout"). A new import that climbs, or an import
hidden inside a function, fails here instead of growing into a circle."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sms_cli"

LAYERS = [
    "core",       # values every layer shares: model, outcomes, settings, errors
    "input",      # readers: files and stdin -> rows with line numbers
    "validate",   # rows -> messages or rejections; part counting
    "store",      # journal, ledger, failures files, working-set index
    "guards",     # suppression list, countries, validity, quiet hours
    "providers",  # one adapter per API, its transport and rate limiter
    "run",        # stream, batcher, dispatcher, shards, routes
    "config",     # the loader: YAML and the environment -> core.settings
    "campaign",   # one working set opened for every command
    "emulator",   # the local provider server
    "receipts",   # delivery receipts joined to the ledger
    "cli",        # arguments in, exit code out
    "__main__",   # signal handling first, then the CLI
]
# the one import of the package's own code that is late on purpose: the entry point's import of
# the CLI after its signal handlers are in place (a Ctrl-C during imports ends with 130, not a
# traceback). Libraries may be imported late where only some runs need them (rich on a
# terminal, redis with rate_backend): that costs no layer anything.
LATE_ON_PURPOSE = {("__main__", "sms_cli.cli.app")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path):
    """(absolute module imported, line, at top level?) for each import of `path`."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if node.module is None else [target]
            for name in names:
                yield name, node.lineno, id(node) in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top


def test_every_import_goes_down_the_layers_and_sits_at_the_top():
    rank = {name: i for i, name in enumerate(LAYERS)}
    climbing, late = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for target, line, at_top in imports(path):
            if target.startswith("sms_cli."):
                there = layer_of(target)
                if there in rank and here in rank and rank[there] > rank[here]:
                    climbing.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
            own = target.startswith("sms_cli.") or target == "sms_cli"
            if own and not at_top and (here, target) not in LATE_ON_PURPOSE:
                late.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
    assert not climbing, "imports that climb a layer:\n" + "\n".join(climbing)
    assert not late, "late imports:\n" + "\n".join(late)


def test_every_module_is_in_a_layer():
    stray = [p.name for p in PACKAGE.iterdir()
             if p.name not in ("__init__.py", "__pycache__") and p.name.removesuffix(".py") not in LAYERS]
    assert not stray, f"modules outside the layers of README 'Layout': {stray}"
