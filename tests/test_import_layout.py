"""The project's own imports sit at the top of each module, except where a heavy optional library forces
laziness; the top-level import graph has no cycle; the torch-free modules stay torch-free.

Pure ``ast`` over the three package folders (no module is imported), so it runs in well under a second.
A module is *heavy* when importing it loads a library outside the core install (``pip install lsnet-deploy``:
numpy, typer, pillow), through its own top-level imports or those of the project modules it imports, its
parent packages included. ``if TYPE_CHECKING:`` blocks are not imports. ``tests/test_packaging.py`` checks
the same promise for real, in a torch-free venv.

A function-level import of a project module is justified when the imported module loads an optional library
that its importer does not load already (so a torch-only module may import a torch-only module at its top;
it lazily imports one that loads onnx). ``lsnet_deploy/__init__.py``'s lazy ``__getattr__`` and the
``LAZY_ALLOWED`` entries are the only other ones.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "lsnet_deploy"
#: each package folder and the module name it is installed as (pyproject's package-dir mapping)
FOLDERS = {REPO / "lsnet_deploy": PACKAGE, REPO / "models": f"{PACKAGE}.models",
           REPO / "exporters": f"{PACKAGE}.exporters"}
#: the import names of the core install's dependencies (pyproject's ``dependencies``; typer brings click).
#: Every other non-stdlib library is optional, onnxruntime included (it comes with the ``runtime`` extra).
CORE_LIBRARIES = frozenset({"numpy", "PIL", "typer", "click"})
#: modules a torch-free install (``lsnet-deploy[runtime]``) imports to predict and benchmark an artifact
TORCH_FREE = (
    "lsnet_deploy.predict", "lsnet_deploy.artifact_metadata", "lsnet_deploy.runtimes",
    "lsnet_deploy.runtimes.base", "lsnet_deploy.runtimes.registry", "lsnet_deploy.runtimes.torch_runner",
    "lsnet_deploy.runtimes.onnxruntime_runner", "lsnet_deploy.runtimes.executorch_runner",
    "lsnet_deploy.runtimes.coreml_runner", "lsnet_deploy.runtimes.tensorrt_runner",
    "lsnet_deploy.runtimes.litert_runner", "lsnet_deploy.runtimes.qnn_runner", "lsnet_deploy.runtimes.arm_runners",
    "lsnet_deploy.cli.bench", "lsnet_deploy.cli.predict", "lsnet_deploy.cli.export_entry",
    "lsnet_deploy.bench.harness",
)
#: function-level imports that stay although the imported module loads nothing new: (importer, imported) -> why
LAZY_ALLOWED = {
    ("lsnet_deploy.accelerators", "lsnet_deploy.runtimes.registry"):
        "a cycle: the runtimes package imports accelerators.qnn_socs (qnn_runner), which runs this package first",
}


@dataclass(frozen=True)
class ImportSite:
    """One imported project module: where the import statement is and whether it runs at import time."""

    importer: str
    imported: str
    file: Path
    line: int
    top_level: bool

    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def _module_files() -> dict[str, Path]:
    files = {}
    for folder, package in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join([package, *parts])] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], top_level: bool):
    """Yield (import node, runs at import time) for the statements of a body, skipping TYPE_CHECKING blocks;
    a class body runs at import time, a function body does not."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top_level
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _imports(node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.orelse, top_level)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, ()):
                    yield from _imports(child.body if isinstance(child, (ast.ExceptHandler, ast.match_case))
                                        else [child], top_level)


class Layout:
    """Every project module's imports, parsed once."""

    def __init__(self) -> None:
        self.files = _module_files()
        self.sites: list[ImportSite] = []
        self.libraries: dict[str, set[str]] = {name: set() for name in self.files}  # optional ones, top level
        for name, path in self.files.items():
            is_package = path.name == "__init__.py"
            for node, top_level in _imports(ast.parse(path.read_text(), str(path)).body, True):
                for imported in self._resolve(name, is_package, node):
                    if imported in self.files:
                        self.sites.append(ImportSite(name, imported, path, node.lineno, top_level))
                    elif top_level and not imported.startswith(PACKAGE):
                        library = imported.split(".")[0]
                        if library not in CORE_LIBRARIES and library not in sys.stdlib_module_names:
                            self.libraries[name].add(library)

    def _resolve(self, module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
        """The modules an import statement loads: for ``from X import y``, X.y where that is a module."""
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if node.level:
            base = module.split(".")
            base = base[:len(base) - node.level + (1 if is_package else 0)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module
        submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in self.files]
        return submodules if len(submodules) == len(node.names) else [source, *submodules]

    def edges(self, top_level: bool = True) -> dict[str, set[str]]:
        """The project modules each module imports (at import time, or inside functions), with the packages
        that importing them runs first: ``from ..runtimes.registry import x`` runs ``lsnet_deploy.runtimes``.
        The importer's own packages are left out: they are already being imported when it runs."""
        graph: dict[str, set[str]] = {name: set() for name in self.files}
        for site in self.sites:
            if site.top_level != top_level:
                continue
            own = _packages_of(site.importer)
            graph[site.importer] |= {name for name in [site.imported, *_packages_of(site.imported)]
                                     if name in self.files and name not in own and name != site.importer}
        return graph

    @functools.cached_property
    def load_graph(self) -> dict[str, set[str]]:
        """The project modules that importing each module runs: its top-level imports and its own packages."""
        graph = self.edges()
        for name in self.files:
            graph[name] |= {package for package in _packages_of(name) if package in self.files}
        return graph

    def chain(self, module: str, library: str) -> list[str]:
        """The shortest chain of project modules through which importing ``module`` loads ``library``."""
        previous: dict[str, str | None] = {module: None}
        queue = [module]
        for current in queue:
            if library in self.libraries[current]:
                path = [current]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for nxt in sorted(self.load_graph[current] - previous.keys()):
                previous[nxt] = current
                queue.append(nxt)
        return []

    @functools.cached_property
    def loads(self) -> dict[str, frozenset[str]]:
        """The optional libraries that importing each module loads."""
        loads = {}
        for name in self.files:
            seen, stack, libraries = {name}, [name], set()
            while stack:
                current = stack.pop()
                libraries |= self.libraries[current]
                for nxt in self.load_graph[current] - seen:
                    seen.add(nxt)
                    stack.append(nxt)
            loads[name] = frozenset(libraries)
        return loads


def _packages_of(module: str) -> list[str]:
    """The packages above a module: ``a.b.c`` -> ``a.b``, ``a``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


@functools.cache
def layout() -> Layout:
    return Layout()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_top_level_import_graph_has_no_cycle():
    found = layout()
    graph = found.edges()
    cycles = _cycles(graph)
    described = [" ; ".join(f"{site.where()} imports {site.imported}" for site in found.sites
                            if site.top_level and site.importer in cycle
                            and {site.imported, *_packages_of(site.imported)} & (set(cycle) & graph[site.importer]))
                 for cycle in cycles]
    assert cycles == [], "import cycles (make one of these imports lazy, or move the shared code):\n" + \
        "\n".join(described)


def test_a_function_imports_only_what_would_make_its_module_heavier():
    """A function-level import of a project module is justified only when that module loads an optional
    library its importer does not already load; everything else belongs at the top of the module."""
    found = layout()
    unjustified = [
        f"{site.where()}: {site.imported}" for site in found.sites
        if not site.top_level and site.importer != PACKAGE  # lsnet_deploy/__init__'s __getattr__ is lazy
        and not found.loads[site.imported] - found.loads[site.importer]
        and (site.importer, site.imported) not in LAZY_ALLOWED
    ]
    assert unjustified == [], ("import these at the top of the module (where that makes a cycle, add the import to "
                               "LAZY_ALLOWED with the reason):\n" + "\n".join(unjustified))


def test_every_allowed_lazy_import_still_exists():
    present = {(site.importer, site.imported) for site in layout().sites if not site.top_level}
    assert set(LAZY_ALLOWED) - present == set(), "these imports moved: drop them from LAZY_ALLOWED"


def test_the_torch_free_modules_load_no_optional_library():
    found = layout()
    assert set(TORCH_FREE) <= set(found.files)
    heavy = [f"{name} loads {library} through {' -> '.join(found.chain(name, library))}"
             for name in TORCH_FREE for library in sorted(found.loads[name])]
    assert heavy == [], "a torch-free module imports an optional library at import time:\n" + "\n".join(heavy)
