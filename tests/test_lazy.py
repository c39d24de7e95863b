"""Lazy loading: the package, its resources and its models are imported on first use.

Each check runs in a fresh interpreter (what is already imported in the test process says
nothing about what an import pulls in).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import cliniko_async
from cliniko_async import models, resources

PACKAGE = Path(cliniko_async.__file__).parent


def fresh(code: str) -> object:
    """Run ``code`` in a new interpreter; return what it prints (JSON)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOADED = """
import json, sys
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                        ("cliniko_async", "httpx", "attrs", "cattrs", "anyio", "aiolimiter"))))
"""


def test_import_cliniko_async_imports_nothing_else() -> None:
    loaded = fresh("import cliniko_async\n" + LOADED)
    assert loaded == ["cliniko_async", "cliniko_async._version"]


def test_the_client_does_not_import_resources_or_models() -> None:
    loaded = fresh("from cliniko_async import Cliniko, SyncCliniko, ClinikoAccounts\n" + LOADED)
    assert isinstance(loaded, list)
    assert "httpx" in loaded and "cliniko_async._client" in loaded
    assert [m for m in loaded if m.startswith("cliniko_async.models.")] == []
    assert [m for m in loaded if m.startswith("cliniko_async.resources.")] == [
        "cliniko_async.resources._generated"  # the clients' resource attributes only
    ]


def test_touching_one_resource_imports_its_models_only() -> None:
    touch = """
        from cliniko_async import Cliniko
        cliniko = Cliniko(api_key="MS0xLXRlc3Q-au1", user_agent="Tests (dev@example.com)")
        assert type(cliniko.patients).__name__ == "PatientsResource"
        assert cliniko.patients is cliniko.patients
    """
    loaded = fresh(textwrap.dedent(touch) + LOADED)
    assert isinstance(loaded, list)
    assert "cliniko_async.resources._patients" in loaded
    assert "cliniko_async.models._patients" in loaded
    assert "cliniko_async.resources._invoices" not in loaded
    assert "cliniko_async.models._settings" not in loaded
    assert "cliniko_async.models._treatment_notes" not in loaded


def test_a_get_imports_neither_pagination_nor_raw_responses() -> None:
    # (the first request through the whole pipeline, answered from memory)
    get = """
        import asyncio, httpx
        from cliniko_async import Cliniko

        def answer(request):
            return httpx.Response(200, json={"id": "1", "first_name": "A"})

        async def main():
            async with Cliniko(api_key="MS0xLXRlc3Q-au1", user_agent="Tests (dev@example.com)",
                               transport=httpx.MockTransport(answer)) as cliniko:
                assert (await cliniko.patients.get(1)).first_name == "A"

        asyncio.run(main())
    """
    loaded = fresh(textwrap.dedent(get) + LOADED)
    assert isinstance(loaded, list)
    assert "cliniko_async._session" in loaded and "cliniko_async._converter" in loaded
    assert "cliniko_async._pagination" not in loaded
    assert "cliniko_async._raw" not in loaded
    # a program that reads records never imports the request-body models
    assert "cliniko_async.models._patients" in loaded
    assert not [m for m in loaded if m.startswith("cliniko_async.models.") and "_input" in m]


def test_from_models_import_one_name_loads_its_module_not_all() -> None:
    loaded = fresh("from cliniko_async.models import PatientInput\n" + LOADED)
    assert isinstance(loaded, list)
    assert "cliniko_async.models._patients_input" in loaded  # the request bodies' module
    assert "cliniko_async.models._settings" not in loaded


@pytest.mark.parametrize("package", [cliniko_async, models, resources], ids=lambda p: p.__name__)
def test_every_public_name_resolves_and_is_listed(package: ModuleType) -> None:
    names: list[str] = package.__all__
    result = fresh(
        f"""
        import json, {package.__name__} as package
        from {package.__name__} import *
        missing = [n for n in package.__all__ if n not in globals()]
        print(json.dumps([missing, sorted(set(package.__all__) - set(dir(package)))]))
        """
    )
    assert result == [[], []]
    for name in names:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        package.NoSuchName  # noqa: B018


@pytest.mark.parametrize("package", [cliniko_async, models, resources], ids=lambda p: p.__name__)
def test_type_checkers_see_every_public_name(package: ModuleType) -> None:
    """The ``TYPE_CHECKING`` imports name exactly ``__all__`` (bar module-level values)."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    seen: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom) and stmt.level == 1:
                    seen |= {alias.asname or alias.name for alias in stmt.names}
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    seen.add(stmt.target.id)
    public = set(package.__all__) - {"__version__"}
    assert public <= seen


def test_every_generated_model_is_exported_from_its_module() -> None:
    import attrs

    from cliniko_async._model import Input, Model

    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, Model | Input):
            assert value.__module__ == f"cliniko_async.models.{models._MODULES[name]}"
    defined = set()
    for path in (PACKAGE / "models").glob("_*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                defined.add(node.name)
    assert defined <= set(models.__all__)
    assert all(
        issubclass(getattr(models, n), Model | Input) and attrs.has(getattr(models, n))
        for n in defined
    )


def test_resources_table_and_generated_header() -> None:
    from cliniko_async._resource import Resource

    assert len(resources.RESOURCES) == len(resources._RESOURCE_MODULES) > 30
    assert all(issubclass(cls, Resource) for cls in resources.RESOURCES.values())
    header = (PACKAGE / "resources" / "_patients.py").read_text()[:400]
    assert "openapi.yaml sha256" in header


def test_an_operation_body_named_by_string_resolves_on_first_use() -> None:
    """Generated operations may name their body model; it is imported when first needed."""
    from cliniko_async._resource import ActionOp, CreateOp

    create = CreateOp("/patients", models.Patient, "PatientInput")
    assert vars(create)["_body_ref"] == "PatientInput"  # nothing resolved yet
    assert create.body is models.PatientInput
    assert vars(create)["_body_ref"] is models.PatientInput  # resolved once, then kept
    action = ActionOp("PATCH", "/patients/{patient_id}/archive", None, "PatientInput")
    assert action.body is models.PatientInput
    assert CreateOp("/patients", models.Patient, None).body is None
