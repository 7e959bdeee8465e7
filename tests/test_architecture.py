"""The couplings no type checker sees, checked: provider signatures against the tool specs, the registry against
the clients and the README, imports that run one way, and every imported package declared."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

from providers import capabilities
from providers.capabilities import Capability
from providers.registry import PROVIDERS
from server.config import load_settings
from tools.catalog import ALL, HEADLINE

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("server", "tools", "docs_topics", "providers")
# What each layer may import: data flows client -> server -> tools -> providers; docs read tools' and providers' data.
MAY_IMPORT = {
    "server": {"server", "tools", "docs_topics", "providers"},
    "docs_topics": {"docs_topics", "tools", "providers"},
    "tools": {"tools", "providers"},
    "providers": {"providers"},
}
# Passed by the tool layer, not a tool argument: a progress callback.
NOT_ARGUMENTS = {"self", "progress"}


def client_class(provider: str) -> type:
    return PROVIDERS[provider].load_client()


def signature_arguments(method: Any) -> tuple[set[str], set[str]]:
    """(required, optional) keyword arguments of a provider method."""
    params = [p for p in inspect.signature(method).parameters.values() if p.name not in NOT_ARGUMENTS]
    assert all(p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params), f"{method}: no *args/**kwargs"
    return {p.name for p in params if p.default is p.empty}, {p.name for p in params if p.default is not p.empty}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_client_implements_exactly_the_capabilities_its_provider_declares(provider: str) -> None:
    cls = client_class(provider)
    implemented = {c for c in vars(capabilities).values() if isinstance(c, Capability) and c.interface in cls.__mro__}
    assert implemented == set(PROVIDERS[provider].capabilities), (
        f"{cls.__name__} subclasses the interfaces of {sorted(c.name for c in implemented)}, but providers/"
        f"{provider} declares {sorted(c.name for c in PROVIDERS[provider].capabilities)}"
    )
    for capability in implemented:
        assert inspect.iscoroutinefunction(getattr(cls, capability.name)), f"{cls.__name__}.{capability.name}"


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_every_provider_method_takes_exactly_the_arguments_its_tool_spec_gives_it(spec: Any) -> None:
    declared = {a.name for a in spec.args}
    for provider in spec.providers:
        assert PROVIDERS[provider].supports(spec.capability), f"{spec.name}: {provider} lacks {spec.capability.name}"
        method = getattr(client_class(provider), spec.capability.name)
        required, optional = signature_arguments(method)
        spec_required, spec_optional = spec.takes(provider)
        assert (required, optional) == (spec_required, spec_optional), (
            f"{spec.name} gives {provider} required {sorted(spec_required)}, optional {sorted(spec_optional)}; "
            f"{method.__qualname__} takes required {sorted(required)}, optional {sorted(optional)}"
        )
        assert required | optional <= declared, f"{spec.name}: {provider} takes undeclared arguments"


def test_every_declared_capability_is_served_by_a_tool() -> None:
    served = {(p, spec.capability) for spec in ALL for p in spec.providers}
    for provider in PROVIDERS.values():
        for capability in provider.capabilities:
            assert (provider.name, capability) in served, f"{provider.name}.{capability.name} has no tool"


def test_a_tool_outputs_what_its_capability_returns() -> None:
    for spec in ALL:
        for provider in spec.providers:
            method = getattr(client_class(provider), spec.capability.name)
            returns = inspect.signature(method, eval_str=True).return_annotation
            assert issubclass(returns, spec.output), f"{spec.name}: {method.__qualname__} returns {returns}"


def test_every_provider_setting_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider in PROVIDERS.values():
        for setting in provider.settings:
            value = "7" if isinstance(setting.default, int) else f"value-of-{setting.env}"
            monkeypatch.setenv(setting.env, value)
    settings = load_settings()
    for provider in PROVIDERS.values():
        arguments = settings.provider_arguments(provider)
        for setting in provider.settings:
            expected: Any = 7 if isinstance(setting.default, int) else f"value-of-{setting.env}"
            assert arguments[setting.arg] == expected, setting.env
        parameters = inspect.signature(client_class(provider.name)).parameters
        assert {s.arg for s in provider.settings} <= set(parameters), provider.name


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))]


def test_layers_import_one_way_and_providers_know_nothing_of_mcp() -> None:
    wrong = []
    for layer, path in _sources():
        imported = _imports(path)
        for other in (set(LAYERS) & imported) - MAY_IMPORT[layer]:
            wrong.append(f"{path.relative_to(ROOT)} imports {other}")
        if layer == "providers" and imported & {"mcp", "mcp_types"}:
            wrong.append(f"{path.relative_to(ROOT)} imports the MCP SDK")
    assert not wrong, "\n".join(wrong)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _our_imports(path: Path, modules: set[str]) -> set[str]:
    """Our modules `path` imports, at any depth: `from a import b` counts as a.b when that is a module, else a."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            }
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for _, path in _sources()}
    return {name: _our_imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_server_and_tools_import_no_particular_provider() -> None:
    """They reach providers through the registry and the shared modules only (capabilities, services, models, ...):
    a provider contributes its settings, what it opens, its resources and its task storage by declaring them."""
    particular = {f"providers.{name}" for name in PROVIDERS}
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.split(".")[0] in ("server", "tools")
        for target in targets
        if any(target == p or target.startswith(p + ".") for p in particular)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other_however_indirectly() -> None:
    graph = import_graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_of_the_local_runtime_or_the_ray_provider_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in ("local", "ray")
        for path in (ROOT / "providers" / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}, f"split these by concern (CONTRIBUTING.md): {long}"


def test_sdk_and_uvicorn_internals_are_used_only_in_their_adapter_modules() -> None:
    sdk_internals = re.compile(
        r"\._lowlevel_server\b|\._connection\b|\.fn_metadata\b|__signature__|last_context|mcp\.shared\._|"
        r"model_extra|Unknown tool: |FlowControlMixin|(?<!sdk)\.(get|add)_request_handler\b"
    )
    wrong = []
    for _, path in _sources():
        name = str(path.relative_to(ROOT))
        if name != "tools/sdk.py" and sdk_internals.search(path.read_text(encoding="utf-8")):
            wrong.append(f"{name} uses an internal of the mcp SDK (keep it in tools/sdk.py)")
        # h11 is also the egress proxy's own HTTP/1.1 parser (its public API, in providers/local/supervisor/egress)
        serving = {"uvicorn", "h11"} if name.startswith("server/") else {"uvicorn"}
        if name != "server/uvicorn_adapter.py" and _imports(path) & serving:
            wrong.append(f"{name} imports uvicorn or h11 for serving (keep it in server/uvicorn_adapter.py)")
    assert not wrong, "\n".join(wrong)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in requirements}


def test_every_imported_package_is_declared() -> None:
    """In the dependencies; an optional-extra provider's package may also import what its extra installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _names(project["dependencies"])
    extras = {
        ROOT / "providers" / name: _names(project["optional-dependencies"][p.extra])
        for name, p in PROVIDERS.items()
        if p.extra is not None
    }
    distributions = packages_distributions()
    missing = set()
    for _, path in _sources():
        allowed = declared | next((names for where, names in extras.items() if where in path.parents), set())
        for name in _imports(path) - set(LAYERS) - set(sys.stdlib_module_names) - {"__future__"}:
            owners = {_normal(d) for d in distributions.get(name, [name])}
            if not owners & allowed:
                missing.add(f"{name} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not in pyproject's dependencies: {sorted(missing)}"


def test_the_default_install_imports_no_optional_extra() -> None:
    """An optional-extra provider's package imports its extra only where it is used (not at start-up)."""
    import subprocess

    probe = "import sys, server.cli, docs_topics; from server.config import load_settings; load_settings(); "
    probe += "print(sorted(m for m in ('ray',) if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# The default install's providers are documented in the README; an optional extra's in docs/<name>.md.
INSTALLED = [p for p in PROVIDERS.values() if p.extra is None]
OPTIONAL = [p for p in PROVIDERS.values() if p.extra is not None]


def readme_matrix(providers: list[Any] = INSTALLED) -> str:
    """The README's provider matrix, as the registry and the tool specs say it is."""
    header = "| provider | needs | " + " | ".join(spec.name for spec in HEADLINE) + " |"
    rows = [header, "|---" * (len(HEADLINE) + 2) + "|"]
    for provider in providers:
        needs = ", ".join(f"`{s.env}`" for s in provider.credentials) or "nothing"
        marks = " | ".join("✓" if provider.name in spec.providers else "" for spec in HEADLINE)
        rows.append(re.sub(r"\|  (?=\|)", "| ", f"| {provider.name} | {needs} | {marks} |"))
    return "\n".join(rows)


def test_readme_tables_match_the_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_matrix() in readme, f"README's provider matrix is stale; it should read:\n{readme_matrix()}"
    installed = {p.name for p in INSTALLED}
    for spec in HEADLINE:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{spec.name}` |")), "")
        names = [p for p in spec.providers if p in installed]
        assert row.endswith(f"| {', '.join(names)} |"), f"README's tools table, {spec.name}: {row!r}"
    toolsets: dict[str, list[str]] = {}
    for spec in ALL:
        if spec.toolset:
            toolsets.setdefault(spec.toolset, []).append(spec.name)
    for toolset, names in toolsets.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{toolset}` |")), "")
        assert sorted(re.findall(r"`(\w+)`", row)[1:]) == sorted(names), f"README's toolsets table, {toolset}: {row!r}"
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for provider in INSTALLED:
        for setting in provider.settings:
            assert f"`{setting.env}`" in configuration, f"docs/configuration.md's table lacks {setting.env}"
            if setting.default is not None:
                assert f"`{setting.default}`" in configuration, f"docs/configuration.md lacks {setting.env}'s default"


@pytest.mark.parametrize("provider", OPTIONAL, ids=lambda p: p.name)
def test_an_optional_provider_has_its_page_with_its_settings_tools_and_a_readme_link(provider: Any) -> None:
    page = ROOT / "docs" / f"{provider.name}.md"
    text = page.read_text(encoding="utf-8")
    assert f"docs/{provider.name}.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install 'runtimes-mcp[{provider.extra}]'" in text
    row = readme_matrix([provider]).splitlines()[-1]
    assert row in text, f"{page.name} lacks its provider matrix row:\n{row}"
    for setting in provider.settings:
        assert f"`{setting.env}`" in text, f"{page.name} lacks {setting.env}"
        if setting.default is not None:
            assert f"`{setting.default}`" in text, f"{page.name} does not give {setting.env}'s default"
