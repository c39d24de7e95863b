"""The README's Python examples run as written against the fake Cliniko served on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko, serve

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(
    index: int, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeCliniko(patients=120, appointments=400)
    with serve(fake) as base_url:
        namespace: dict[str, Any] = {
            "API_KEY": DEFAULT_API_KEY,
            "USER_AGENT": DEFAULT_USER_AGENT,
            "BASE_URL": base_url,
            "__name__": "readme_example",
        }
        exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), namespace)  # noqa: S102
        if "per_clinic" in namespace:
            asyncio.run(namespace["per_clinic"]())
        if "init_worker" in namespace:
            namespace["init_worker"](redis_url)
            assert namespace["cliniko"].patients.get(1).id == 1
            namespace["cliniko"].close()
        if "test_my_sync_job" in namespace:
            from cliniko_async import Cliniko

            async def run() -> None:
                async with (
                    httpx.AsyncClient(transport=fake.transport()) as http,
                    Cliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT,
                            base_url="http://127.0.0.1/v1", http_client=http) as client,
                ):  # fmt: skip
                    await namespace["test_my_sync_job"](client, fake)

            asyncio.run(run())
    assert fake.stats().rejected == 0
    assert fake.requests > 0 or "pip install" in BLOCKS[index]
    capsys.readouterr()


def test_the_coverage_table_is_rendered_from_the_code() -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "tools" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = generate  # its dataclasses look themselves up there
    spec.loader.exec_module(generate)
    readme = README.read_text()
    assert generate.render_readme(readme) == readme
    assert "| `cliniko.treatment_notes` |" in readme and "231 operations" in readme
