"""The code's own rules, checked on its sources: Ray's public API only (package, benches and tests), no module
reaching into another's `_private` names (tests included), and a training loop that knows nothing of Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("raysearch", "models", "bench", "tests")  # the project's own top-level names
SOURCES = sorted(str(p.relative_to(REPO)) for folder in PACKAGES for p in (REPO / folder).rglob("*.py"))


def is_private(part: str) -> bool:
    """`_name`, not a dunder such as `__version__` or `__main__`."""
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


# ---------------------------------------------------------------- Ray's public API only


def is_private_ray(name: str) -> bool:
    """A dotted path into Ray that is not its public API: any `_name` component (ray._private, ray._raylet,
    ray.autoscaler._private, ray.train._internal, ...; dunders such as ray.__version__ are public), or Train V2's
    own package path (its public API is ray.train)."""
    parts = name.split(".")
    if parts[0] != "ray":
        return False
    return name.startswith("ray.train.v2") or any(is_private(part) for part in parts[1:])


def dotted_uses(tree: ast.AST) -> list[str]:
    """Every module a source imports (and name it imports from one), and every dotted attribute path it reads."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                found.append(".".join([value.id, *reversed(parts)]))
    return found


def private_ray_uses(source: str) -> list[str]:
    """Every import of, or attribute path into, a private Ray module in a Python source."""
    return [name for name in dotted_uses(ast.parse(source)) if is_private_ray(name)]


def test_the_private_ray_check_catches_what_it_must():
    assert private_ray_uses("from ray._private.services import x") == ["ray._private.services",
                                                                        "ray._private.services.x"]
    assert private_ray_uses("import ray\nray._private.state.actors()") != []
    assert private_ray_uses("from ray.train.v2._internal.execution import controller") != []
    assert private_ray_uses("from ray.train._internal.session import get_session") != []
    assert private_ray_uses("from ray.autoscaler._private.util import prepare_config") != []
    assert private_ray_uses("import ray\nprint(ray.__version__)") == []
    assert private_ray_uses("from ray import tune\nfrom ray.train import Checkpoint\ntune.report({})") == []


@pytest.mark.parametrize("path", SOURCES)
def test_no_private_ray_api(path):
    assert private_ray_uses((REPO / path).read_text()) == []


# ---------------------------------------------------------------- no reaching into another module's _names


def is_project_module(dotted: str) -> bool:
    """Whether `dotted` (raysearch.inpaint, tests.fake_tune, models) names one of the project's modules."""
    path = REPO.joinpath(*dotted.split("."))
    return dotted.split(".")[0] in PACKAGES and (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file())


def project_private_uses(source: str) -> list[str]:
    """Every `_name` of another project module a source imports, reads or monkeypatches (by string)."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> project module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_project_module(alias.name):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if node.module.split(".")[0] in PACKAGES and is_private(alias.name):
                    found.append(full)
                elif is_project_module(full):
                    modules[alias.asname or alias.name] = full
    for name in dotted_uses(tree):
        root, *rest = name.split(".")
        if root in modules and any(is_private(part) for part in rest):
            found.append(f"{modules[root]}.{'.'.join(rest)}")
    for node in ast.walk(tree):  # setattr(module, "_name", ...), monkeypatch.setattr(module, "_name", ...)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "setattr" \
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id in modules \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and is_private(node.args[1].value):
            found.append(f"{modules[node.args[0].id]}.{node.args[1].value}")
    return found


def test_the_private_name_check_catches_what_it_must():
    assert project_private_uses("from raysearch.analyze import _generate") == ["raysearch.analyze._generate"]
    assert project_private_uses("from raysearch import metrics\nmetrics._pyr_up(x)") == ["raysearch.metrics._pyr_up"]
    assert project_private_uses("import raysearch.runtime as runtime\nruntime._x") == ["raysearch.runtime._x"]
    assert project_private_uses("from tests.test_baselines import _smooth_photo") == [
        "tests.test_baselines._smooth_photo"]
    assert project_private_uses("from raysearch.data import prepare as p\nmonkeypatch.setattr(p, '_load_one', f)") \
        == ["raysearch.data.prepare._load_one"]
    # Public names, dunders, other libraries and a module's own names are fine.
    assert project_private_uses("from raysearch import metrics\nmetrics.psnr(a, b)\nmetrics.__name__\n"
                                "import torch\ntorch._foreach_norm(x)\n_local = 1") == []


@pytest.mark.parametrize("path", SOURCES)
def test_no_module_reaches_into_another_modules_private_names(path):
    assert project_private_uses((REPO / path).read_text()) == []


# ---------------------------------------------------------------- the loop knows nothing of Ray


def test_the_training_loop_and_the_fill_path_import_no_ray():
    # Directly or through anything they import: the loop runs the same under Ray, in benches and in tests.
    direct = [name for path in sorted((REPO / "raysearch" / "loop").glob("*.py")) + [REPO / "raysearch" / "fill.py"]
              for name in dotted_uses(ast.parse(path.read_text())) if name.split(".")[0] == "ray"]
    assert direct == []
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, raysearch.loop, raysearch.fill\n"
         "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"
