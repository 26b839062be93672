from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from dexcost.instrumentation.import_hook import when_imported


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith("dexcost_hook_probe")]:
        del sys.modules[name]


def test_callback_runs_on_later_import(module_dir: Path) -> None:
    (module_dir / "dexcost_hook_probe_a.py").write_text("VALUE = 41\n")
    seen: list[ModuleType] = []
    when_imported("dexcost_hook_probe_a", seen.append)
    assert seen == []

    import dexcost_hook_probe_a  # type: ignore[import-not-found]

    assert seen == [dexcost_hook_probe_a]
    assert dexcost_hook_probe_a.VALUE == 41


def test_callback_runs_at_once_when_imported(module_dir: Path) -> None:
    (module_dir / "dexcost_hook_probe_b.py").write_text("VALUE = 1\n")
    import dexcost_hook_probe_b  # type: ignore[import-not-found]

    seen: list[ModuleType] = []
    when_imported("dexcost_hook_probe_b", seen.append)
    assert seen == [dexcost_hook_probe_b]


def test_module_keeps_real_loader(module_dir: Path) -> None:
    (module_dir / "dexcost_hook_probe_c.py").write_text("VALUE = 2\n")
    when_imported("dexcost_hook_probe_c", lambda module: None)

    import dexcost_hook_probe_c  # type: ignore[import-not-found]

    assert type(dexcost_hook_probe_c.__loader__).__name__ == "SourceFileLoader"


def test_failed_import_keeps_callback(module_dir: Path) -> None:
    probe = module_dir / "dexcost_hook_probe_d.py"
    probe.write_text("raise RuntimeError('broken on first import')\n")
    seen: list[ModuleType] = []
    when_imported("dexcost_hook_probe_d", seen.append)
    with pytest.raises(RuntimeError):
        import dexcost_hook_probe_d  # type: ignore[import-not-found]  # noqa: F401
    probe.write_text("VALUE = 3\n")
    sys.modules.pop("dexcost_hook_probe_d", None)

    import dexcost_hook_probe_d  # type: ignore[import-not-found]  # noqa: F811

    assert seen == [dexcost_hook_probe_d]
