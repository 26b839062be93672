from __future__ import annotations

import sys
import threading
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
        import dexcost_hook_probe_d  # type: ignore[import-not-found]
    probe.write_text("VALUE = 3\n")
    sys.modules.pop("dexcost_hook_probe_d", None)

    import dexcost_hook_probe_d  # type: ignore[import-not-found]

    assert seen == [dexcost_hook_probe_d]


def test_callback_runs_after_import_on_other_thread(module_dir: Path) -> None:
    # The probe module blocks half-way through its import until the test releases it,
    # like a library imported by a background thread while init() runs.
    (module_dir / "dexcost_hook_probe_slow.py").write_text(
        "import threading\n"
        "STARTED = threading.Event()\n"
        "RELEASE = threading.Event()\n"
        "STARTED.set()\n"
        "RELEASE.wait(30)\n"
        "Client = object\n"
    )
    importer = threading.Thread(target=__import__, args=("dexcost_hook_probe_slow",))
    importer.start()
    for _ in range(3000):
        partial = sys.modules.get("dexcost_hook_probe_slow")
        if partial is not None and hasattr(partial, "STARTED"):
            break
        threading.Event().wait(0.01)
    assert partial is not None
    partial.STARTED.wait(30)

    seen: list[ModuleType] = []
    called = threading.Event()

    def callback(module: ModuleType) -> None:
        seen.append(module)
        called.set()

    # Returns at once: waiting here could deadlock on a lock the importer needs.
    when_imported("dexcost_hook_probe_slow", callback)
    assert seen == []

    partial.RELEASE.set()
    importer.join(30)
    assert called.wait(30)
    assert len(seen) == 1
    assert seen[0].Client is object
