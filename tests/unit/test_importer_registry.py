"""The importer registry: scheme lookup, entry-point plugins (a real pip-installed one), no-plugins mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitbridge.converters.importers import base
from kitbridge.converters.importers.base import (
    BUILTIN_IMPORTERS,
    ENTRY_POINT_GROUP,
    PluginWarning,
    import_source,
    importer_for,
    importer_specs,
    source_scheme,
)
from kitbridge.converters.importers.local import LocalImporter
from kitbridge.errors import KitbridgeError, UsageError

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "data" / "plugin_pkg"


@pytest.fixture(autouse=True)
def _plugins_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITBRIDGE_NO_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin pip-installed (offline, from its pyproject.toml) into a fresh directory."""
    work = tmp_path_factory.mktemp("plugin")
    src = work / "src"
    shutil.copytree(PLUGIN_SRC, src)  # pip builds in place: keep the repository clean
    target = work / "site"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert list(target.glob("kitbridge_example_plugin-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def with_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(plugin_site))  # also invalidates importlib's caches
    yield plugin_site
    sys.modules.pop("kitbridge_example_plugin", None)


# --- scheme parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "scheme"),
    [
        ("hf://sentence-transformers/all-MiniLM-L6-v2", "hf"),
        ("HF://org/name@main", "hf"),
        ("runs:/0123abcd/model", "runs"),
        ("models:/my-model/3", "models"),
        ("mlflow-artifacts:/1/abc/artifacts/model", "mlflow-artifacts"),
        ("file:///srv/models/m", "file"),
        ("./my-model", "file"),
        ("/abs/path/model", "file"),
        ("model-dir", "file"),
        ("../up/v1:final", "file"),
        ("s3+https://bucket/x", "s3+https"),
    ],
)
def test_source_scheme_reads_the_uri_scheme_and_treats_paths_as_file(source: str, scheme: str) -> None:
    assert source_scheme(source) == scheme


@pytest.mark.parametrize("source", ["./m", "/abs/m", "m", "file:///abs/m", "FILE:///abs/m"])
def test_plain_paths_and_file_uris_get_the_local_importer(source: str) -> None:
    assert isinstance(importer_for(source), LocalImporter)


def test_unknown_scheme_is_a_usage_error_naming_installed_importers_and_schemes() -> None:
    with pytest.raises(UsageError) as info:
        importer_for("nosuch://org/model")
    err = info.value
    assert err.exit_code == 2
    assert "no importer for scheme 'nosuch:'" in err.message
    assert "nosuch://org/model" in err.message
    assert err.hint is not None
    assert "LocalImporter: file: and plain paths" in err.hint


def test_an_existing_folder_whose_name_looks_like_a_scheme_is_imported_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v1:final").mkdir()
    (tmp_path / "v1:final" / "model.gguf").write_bytes(b"gguf")
    assert isinstance(importer_for("v1:final"), LocalImporter)
    assert [f.path for f in import_source("v1:final").files] == ["model.gguf"]


# --- built-ins ------------------------------------------------------------------------------------------


def test_builtins_are_found_by_the_same_lookup_as_plugins() -> None:
    specs = importer_specs()
    builtin = {(s.scheme, s.target) for s in specs if s.builtin}
    assert builtin >= set(BUILTIN_IMPORTERS.items())
    assert specs[0].builtin  # built-ins first: a plugin cannot shadow them


def test_builtin_entry_point_and_builtin_table_count_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pyproject.toml's entry points produce once the package is reinstalled with them.
    info = tmp_path / "kitbridge-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kitbridge\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nfile = kitbridge.converters.importers.local:LocalImporter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", "1")  # the kitbridge distribution's own entry points stay
    file_specs = [s for s in importer_specs() if s.scheme == "file"]
    assert len(file_specs) == 1
    assert file_specs[0].builtin


# --- a real third-party plugin --------------------------------------------------------------------------


@pytest.mark.usefixtures("with_plugin")
def test_a_pip_installed_plugin_is_found_through_its_entry_points(tmp_path: Path) -> None:
    importer = importer_for("example://hello")
    assert type(importer).__module__ == "kitbridge_example_plugin"
    tree = import_source("example-too://hello", revision="r7", work_dir=tmp_path)
    assert [f.path for f in tree.files] == ["weights.gguf"]
    assert (tmp_path / "weights.gguf").read_text() == "hello"
    assert tree.provenance.revision == "r7"
    assert tree.provenance.source_uri == "example-too://hello"


@pytest.mark.usefixtures("with_plugin")
def test_plugins_are_listed_with_their_distribution_in_the_unknown_scheme_message() -> None:
    with pytest.raises(UsageError) as info:
        importer_for("nosuch://x")
    assert info.value.hint is not None
    assert "ExampleImporter (from kitbridge-example-plugin): example:, example-too:" in info.value.hint


@pytest.mark.usefixtures("with_plugin")
def test_a_broken_plugin_does_not_break_other_schemes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning: the broken plugin is never imported
        assert isinstance(importer_for("./model"), LocalImporter)
        assert type(importer_for("example://x")).__name__ == "ExampleImporter"


@pytest.mark.usefixtures("with_plugin")
def test_asking_for_a_broken_plugins_scheme_says_what_is_broken() -> None:
    with pytest.raises(KitbridgeError) as info:
        importer_for("broken-example://x")
    assert not isinstance(info.value, UsageError)
    assert "broken-example:" in info.value.message
    assert "kitbridge_example_plugin:NoSuchImporter" in info.value.message
    assert "AttributeError" in info.value.message


@pytest.mark.usefixtures("with_plugin")
def test_a_broken_importer_is_reported_as_a_warning_when_another_stands_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BUILTIN_IMPORTERS, "example", "kitbridge.no_such_module:Importer")
    with pytest.warns(PluginWarning, match=r"kitbridge\.no_such_module:Importer.*ModuleNotFoundError"):
        importer = importer_for("example://x")
    assert type(importer).__name__ == "ExampleImporter"
    messages: list[str] = []
    importer_for("example://x", warn=messages.append)
    assert len(messages) == 1
    assert "scheme 'example:'" in messages[0]


@pytest.mark.usefixtures("with_plugin")
def test_a_plugin_class_that_does_not_serve_its_scheme_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTIN_IMPORTERS, "other", "kitbridge_example_plugin:ExampleImporter")
    with pytest.raises(KitbridgeError, match="registered for scheme 'other'"):
        importer_for("other://x")


@pytest.mark.usefixtures("with_plugin")
def test_no_plugins_env_keeps_builtins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert any(s.distribution == "kitbridge-example-plugin" for s in importer_specs())
    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", "1")
    assert all(s.builtin for s in importer_specs())
    assert isinstance(importer_for("./m"), LocalImporter)
    with pytest.raises(UsageError) as info:
        importer_for("example://hello")
    assert info.value.hint is not None
    assert "KITBRIDGE_NO_PLUGINS=1" in info.value.hint
    assert "ExampleImporter" not in info.value.hint


@pytest.mark.parametrize(("value", "off"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_no_plugins_env_values(value: str, off: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", value)
    assert base.plugins_disabled() is off


# --- exporter runtimes are plugins the same way ----------------------------------------------------------


def test_an_exporter_runtime_plugin_is_found_and_used(with_plugin: Path, tmp_path: Path) -> None:
    from kitbridge.converters.exporters.base import BUILTIN_RUNTIMES, load_runtime, runtime_targets

    targets = runtime_targets()
    assert targets["static-files"] == "kitbridge_example_plugin:StaticFilesRuntime"
    assert all(targets[name] == target for name, target in BUILTIN_RUNTIMES.items())  # not taken over
    runtime = load_runtime("static-files")
    assert runtime.name == "static-files"
    with pytest.raises(UsageError, match=r"unknown runtime 'nope'.*static-files"):
        load_runtime("nope")


def test_plugins_off_keeps_only_builtin_runtimes(with_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kitbridge.converters.exporters.base import BUILTIN_RUNTIMES, runtime_targets

    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", "1")
    assert runtime_targets() == BUILTIN_RUNTIMES
