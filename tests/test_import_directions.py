"""Dependencies point one way (docs/architecture.md): each app imports only the apps below it.

Read from the source (AST), not by importing: every `import` and `from ... import` of one of
our apps, wherever it stands (module level or inside a function), and every
`apps.get_model("<app>", ...)` (a dependency all the same, only hidden). Imports under
`if TYPE_CHECKING:` are type hints, not dependencies, and are left out. Migrations are left
out too (Django writes them; they name other apps' migrations, not their code).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Who may import whom: the design (design.md "Architecture", docs/architecture.md). The project
# package, convai_admin, is open to every app but convai (a client library with no Django app
# of ours under it) and sandbox (a separate program that happens to share the process).
ALLOWED: dict[str, set[str]] = {
    "convai": set(),
    "convai_admin": set(),
    "sandbox": set(),
    "audit": {"convai_admin"},
    "accounts": {"audit", "convai_admin"},
    "teams": {"accounts", "audit", "convai_admin"},
    "keys": {"accounts", "audit", "convai", "convai_admin"},
    # The engine of background work: runs what apps register; knows members (teams) for who
    # may cancel or resume, keys for refreshing a key's usage after a job, convai for retrying
    # Convai reads (429/Retry-After); never characters (characters registers its job kinds).
    "jobs": {"audit", "convai", "convai_admin", "keys", "teams"},
    "characters": {"accounts", "audit", "convai", "convai_admin", "jobs", "keys", "teams"},
    # The audit log's review pages: team pages (teams' team_view) over audit's selectors, kept
    # out of audit so that audit imports nothing of ours (docs/architecture.md).
    # accounts: the one re-authentication decorator (accounts.decorators) before an export.
    "review": {"accounts", "audit", "convai_admin", "teams"},
    # Backup and restore of the whole install: the audit events and chain check (audit), the
    # keyring and the "do stored keys decrypt" check (keys).
    "backups": {"audit", "convai_admin", "keys"},
    # The token broker for game builds: mints through a member's key (keys, convai), team
    # pages (teams), its periodic tidy-up (jobs); never characters (docs/builds.md).
    "builds": {"accounts", "audit", "convai", "convai_admin", "jobs", "keys", "teams"},
}
APPS = set(ALLOWED)

# Justified exceptions, for good: (importing file, imported module or a package above it).
JUSTIFIED = {
    # Convai's public voice and language tables are kept once, in convai/data/: the sandbox
    # serves them as its emulated Convai's own (a data module, no code of the product).
    ("sandbox/emulator.py", "convai.public_tables"),
    # `make run`'s demo: a key and characters made in the sandbox before the server is up.
    ("characters/management/commands/bootstrap_demo.py", "sandbox"),
    # The root URLconf mounts every app (the others by dotted path); characters' one urls.py
    # has a second URL list, mounted under the `bundles:` namespace, which a path cannot name.
    ("convai_admin/urls.py", "characters.urls"),
}

# TEMPORARY: wrong-way dependencies being removed (none now). A line here must match an import
# (test_no_stale_exceptions), so none outlives its fix.
TEMPORARY: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    path: str  # relative to the project root
    line: int
    # The imported module (with the imported name for `from m import name`), or "<app>" for
    # apps.get_model("<app>", ...).
    module: str

    @property
    def app(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def target(self) -> str:
        return self.module.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for statement in node.body:
                    inside.update(id(child) for child in ast.walk(statement))
    return inside


def _imports_of(path: Path) -> Iterator[Import]:
    relative = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from convai import public_tables` imports convai.public_tables: the name too.
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_model"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value.split(".", 1)[0]]
        for module in modules:
            yield Import(relative, node.lineno, module)


def all_imports() -> list[Import]:
    found: list[Import] = []
    for app in sorted(APPS):
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts:
                continue
            found.extend(
                item
                for item in _imports_of(path)
                if item.target in APPS and item.target != item.app
            )
    return found


def _matches(item: Import, exception: tuple[str, str]) -> bool:
    path, module = exception
    return item.path == path and (item.module == module or item.module.startswith(module + "."))


def _excused(item: Import, exceptions: set[tuple[str, str]]) -> bool:
    return any(_matches(item, exception) for exception in exceptions)


def test_every_app_of_ours_is_in_the_rules() -> None:
    """A new app must be placed in the graph (ALLOWED) before it can be imported."""
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "scripts"}
    }
    assert packages == APPS


def test_dependencies_point_one_way() -> None:
    wrong = [
        str(item)
        for item in all_imports()
        if item.target not in ALLOWED[item.app]
        and not _excused(item, JUSTIFIED)
        and not _excused(item, TEMPORARY)
    ]
    assert wrong == [], "imports against docs/architecture.md's graph:\n" + "\n".join(wrong)


@pytest.mark.parametrize("exception", sorted(JUSTIFIED | TEMPORARY), ids=str)
def test_no_stale_exceptions(exception: tuple[str, str]) -> None:
    """Each exception still matches an import: once its fix lands, the line goes too."""
    assert any(_matches(item, exception) for item in all_imports()), (
        f"{exception} no longer happens: remove it from the exceptions"
    )


def test_the_rules_have_no_cycle() -> None:
    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep}))
            for dep in ALLOWED[start]
        )

    assert [app for app in sorted(APPS) if reaches(app, app)] == []


def test_tests_share_helpers_through_support_modules_not_test_modules() -> None:
    """A helper two test modules need lives in a support module (tests/support/, or a
    package's support.py/conftest.py), never in a test module another one imports: running
    one file must not collect another's tests, and moving a test must not break a neighbour."""
    wrong: list[str] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=relative)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            wrong.extend(
                f"{relative}:{node.lineno} imports {name}"
                for name in names
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
            )
    assert wrong == []
