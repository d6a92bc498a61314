"""MLflow's ``MLmodel`` file read as data: flavors, versions, ids, signature, and the files it points at.

Both layouts are understood: MLflow 2 (model under the run's artifacts, ``model_uuid``, ``model.pkl``)
and MLflow 3 (a LoggedModel with ``model_id``, an absolute ``artifact_path``, ``model.skops``). Module
names in the file (``loader_module``, ``model_class``) are strings only; nothing is imported. The reader
fails soft: problems become ``warnings`` on the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath

import yaml

from kitbridge.profile.hfconfig import MAX_SMALL_FILE, StrPath, read_small_text

PYFUNC = "python_function"
"""The generic flavor every MLflow model has besides its framework's own."""

# Flavor keys that name the model's data (a file or a directory, relative to the MLmodel's folder).
_FILE_KEYS = (
    "pickled_model",  # sklearn, pmdarima, paddle (model.pkl / model.skops)
    "model_data",  # pytorch ("data"), prophet
    "data",  # pyfunc for pytorch, xgboost (model.xgb), lightgbm, onnx, catboost, statsmodels, spacy, ...
    "model_path",  # pyfunc for sklearn (MLflow 3)
    "model_binary",  # transformers ("model")
    "model_file",
    "python_model",  # custom pyfunc (python_model.pkl)
    "saved_model_dir",  # tensorflow
    "model_dir",
)
# Keys that are read into their own fields, not ``options``.
_KNOWN_KEYS = frozenset(
    {*_FILE_KEYS, "code", "env", "loader_module", "python_version", "serialization_format", "task"}
    | {"instance_type", "artifacts"}
)


@dataclass(frozen=True)
class Flavor:
    """One entry of ``flavors``: how one library (or pyfunc) loads the model."""

    name: str
    """The flavor: sklearn, pytorch, transformers, xgboost, python_function, ..."""
    version: str | None = None
    """The library version it was saved with (``sklearn_version``, ``pytorch_version``, ``xgb_version``)."""
    files: tuple[str, ...] = ()
    """Model files/directories it names (``pickled_model``, ``model_data``, ``data``, ``model_binary``...)."""
    serialization_format: str | None = None
    """``serialization_format``: skops, cloudpickle or pickle (sklearn)."""
    task: str | None = None
    """``task`` (transformers): text-classification, text-generation, ..."""
    instance_type: str | None = None
    """``instance_type`` (transformers): the pipeline class, e.g. TextClassificationPipeline."""
    loader_module: str | None = None
    """``loader_module`` (python_function): the module MLflow loads it with (never imported here)."""
    python_version: str | None = None
    """``python_version`` (python_function)."""
    env_conda: str | None = None
    """``env.conda`` (python_function), e.g. conda.yaml."""
    env_virtualenv: str | None = None
    """``env.virtualenv`` (python_function), e.g. python_env.yaml."""
    code: str | None = None
    """``code``: the folder of code saved with the model (``code_paths``), if any."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Every other scalar key, as text (``model_class``, ``framework``, ``source_model_name``...)."""


@dataclass(frozen=True)
class SignatureField:
    """One input, output or parameter of an MLflow model signature."""

    name: str | None
    """The column/tensor/parameter name; None for an unnamed one."""
    type: str
    """Column type (double, long, string, ...), ``array<string>``, ``object``, or ``tensor``."""
    dtype: str | None = None
    """The element type of a tensor (float32, int64, object, ...)."""
    shape: tuple[int, ...] | None = None
    """The shape of a tensor or parameter; -1 is a variable dimension."""
    required: bool = True
    """Whether the column must be present (``required``)."""
    default: str | None = None
    """A parameter's default value, as JSON."""


@dataclass(frozen=True)
class ModelSignature:
    """``signature``: what the model takes and returns."""

    inputs: tuple[SignatureField, ...] = ()
    """``inputs``."""
    outputs: tuple[SignatureField, ...] = ()
    """``outputs``."""
    params: tuple[SignatureField, ...] = ()
    """``params``: inference parameters."""

    @property
    def input_kind(self) -> str | None:
        """``tensors`` when the inputs are tensors, ``columns`` when they are columns, None when empty."""
        if not self.inputs:
            return None
        return "tensors" if all(f.type == "tensor" for f in self.inputs) else "columns"


@dataclass(frozen=True)
class InputExampleInfo:
    """``saved_input_example_info``: where the logged input example is and how it is encoded."""

    artifact_path: str | None = None
    """The example's file, e.g. input_example.json."""
    serving_input_path: str | None = None
    """A ready-made request body for the scoring server, e.g. serving_input_example.json."""
    type: str | None = None
    """dataframe, ndarray, json_object, ..."""
    pandas_orient: str | None = None
    """split or records, for a dataframe example."""


@dataclass(frozen=True)
class MlModelInfo:
    """What an ``MLmodel`` file says about a logged MLflow model."""

    flavors: tuple[Flavor, ...] = ()
    """The flavors in file order."""
    framework: str | None = None
    """The first flavor that is not python_function (sklearn, pytorch, ...); None for a pure pyfunc."""
    framework_version: str | None = None
    """That flavor's library version."""
    mlflow_version: str | None = None
    """``mlflow_version``."""
    model_uuid: str | None = None
    """``model_uuid``."""
    model_id: str | None = None
    """``model_id``: the MLflow 3 LoggedModel id (``m-...``); None for MLflow 2 models."""
    run_id: str | None = None
    """``run_id``: the run that logged it (optional in MLflow 3)."""
    artifact_path: str | None = None
    """``artifact_path`` as written: ``model`` (MLflow 2) or an absolute URI (MLflow 3)."""
    utc_time_created: str | None = None
    """``utc_time_created`` as text."""
    model_size_bytes: int | None = None
    """``model_size_bytes``, when recorded."""
    python_version: str | None = None
    """The python_function flavor's ``python_version``."""
    signature: ModelSignature | None = None
    """``signature``, parsed from its JSON strings; None when the model has none."""
    input_example: InputExampleInfo | None = None
    """``saved_input_example_info``; None when no example was logged."""
    files: tuple[str, ...] = ()
    """Every model file/directory the flavors point at, deduplicated, relative to the MLmodel's folder."""
    code_paths: tuple[str, ...] = ()
    """Code folders saved with the model (the flavors' ``code``)."""
    env_files: tuple[str, ...] = ()
    """Environment files the pyfunc flavor names (conda.yaml, python_env.yaml)."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""

    @property
    def flavor_names(self) -> tuple[str, ...]:
        """The flavor names in file order."""
        return tuple(f.name for f in self.flavors)


def _text(v: object) -> str | None:
    """A scalar as text (YAML may have typed it: a float version, a timestamp)."""
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    s = str(v).strip()
    return s or None


def _rel_path(v: object, what: str, warnings: list[str]) -> str | None:
    s = _text(v)
    if s is None:
        return None
    p = PurePosixPath(s)
    if p.is_absolute() or ".." in p.parts or "://" in s or "\\" in s:
        warnings.append(f"MLmodel: {what} {s!r} is not a path inside the model folder, ignored")
        return None
    return str(p)


def _read_flavor(name: str, body: object, warnings: list[str]) -> Flavor:
    if not isinstance(body, dict):
        if body is not None:
            warnings.append(f"MLmodel: flavor {name!r} is not a mapping")
        return Flavor(name=name)
    files: list[str] = []
    for key in _FILE_KEYS:
        rel = _rel_path(body.get(key), f"{name}.{key}", warnings)
        if rel and rel not in files:
            files.append(rel)
    artifacts = body.get("artifacts")
    if isinstance(artifacts, dict):  # custom pyfunc: {name: {path: artifacts/x, uri: ...}}
        for art_name, art in artifacts.items():
            rel = _rel_path(
                art.get("path") if isinstance(art, dict) else None, f"artifact {art_name}", warnings
            )
            if rel and rel not in files:
                files.append(rel)
    env = body.get("env")
    conda = venv = None
    if isinstance(env, dict):
        conda = _rel_path(env.get("conda"), "env.conda", warnings)
        venv = _rel_path(env.get("virtualenv"), "env.virtualenv", warnings)
    elif env is not None:  # MLflow 1: env: conda.yaml
        conda = _rel_path(env, "env", warnings)
    # sklearn_version, pytorch_version, ...; else the first other *_version key (xgb_version, lgb_version).
    version_keys = [
        k
        for k in body
        if isinstance(k, str)
        and k.endswith("_version")
        and k not in ("python_version", "cloudpickle_version")
    ]
    version_key = f"{name}_version" if f"{name}_version" in version_keys else next(iter(version_keys), None)
    version = _text(body.get(version_key)) if version_key else None
    options = {
        str(k): t
        for k, v in body.items()
        if str(k) not in _KNOWN_KEYS and k != version_key and (t := _text(v)) is not None
    }
    return Flavor(
        name=name,
        version=version,
        files=tuple(files),
        serialization_format=_text(body.get("serialization_format")),
        task=_text(body.get("task")),
        instance_type=_text(body.get("instance_type")),
        loader_module=_text(body.get("loader_module")),
        python_version=_text(body.get("python_version")),
        env_conda=conda,
        env_virtualenv=venv,
        code=_rel_path(body.get("code"), f"{name}.code", warnings),
        options=options,
    )


def _column_type(spec: Mapping[str, object]) -> str:
    t = _text(spec.get("type")) or "unknown"
    items, values = spec.get("items"), spec.get("values")
    if t == "array" and isinstance(items, dict):
        return f"array<{_column_type(items)}>"
    if t == "map" and isinstance(values, dict):
        return f"map<string, {_column_type(values)}>"
    return t


def _shape(v: object) -> tuple[int, ...] | None:
    if isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in v):
        return tuple(v)
    return None


def _fields(raw: object, what: str, warnings: list[str]) -> tuple[SignatureField, ...]:
    if raw is None:
        return ()
    data = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            warnings.append(f"MLmodel: signature {what} is not valid JSON ({e}), ignored")
            return ()
    if not isinstance(data, list):
        warnings.append(f"MLmodel: signature {what} is not a list, ignored")
        return ()
    out: list[SignatureField] = []
    for spec in data:
        if not isinstance(spec, dict):
            warnings.append(f"MLmodel: signature {what} has an entry that is not an object, skipped")
            continue
        name = _text(spec.get("name"))
        required = spec.get("required") is not False
        tensor = spec.get("tensor-spec")
        if spec.get("type") == "tensor" and isinstance(tensor, dict):
            out.append(
                SignatureField(
                    name, "tensor", _text(tensor.get("dtype")), _shape(tensor.get("shape")), required
                )
            )
            continue
        default = json.dumps(spec["default"], default=str) if "default" in spec else None
        out.append(
            SignatureField(name, _column_type(spec), None, _shape(spec.get("shape")), required, default)
        )
    return tuple(out)


def _signature(raw: object, warnings: list[str]) -> ModelSignature | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        warnings.append("MLmodel: signature is not a mapping, ignored")
        return None
    return ModelSignature(
        inputs=_fields(raw.get("inputs"), "inputs", warnings),
        outputs=_fields(raw.get("outputs"), "outputs", warnings),
        params=_fields(raw.get("params"), "params", warnings),
    )


def _input_example(raw: object) -> InputExampleInfo | None:
    if not isinstance(raw, dict):
        return None
    return InputExampleInfo(
        artifact_path=_text(raw.get("artifact_path")),
        serving_input_path=_text(raw.get("serving_input_path")),
        type=_text(raw.get("type")),
        pandas_orient=_text(raw.get("pandas_orient")),
    )


def read_mlmodel(path: StrPath) -> MlModelInfo:
    """Read an ``MLmodel`` file (or the one in directory ``path``); never raises."""
    p = Path(path)
    file = p / "MLmodel" if p.is_dir() else p
    try:
        text, truncated = read_small_text(file, MAX_SMALL_FILE)
    except OSError as e:
        return MlModelInfo(warnings=(f"{file.name}: cannot read ({e.strerror or e})",))
    if truncated:
        return MlModelInfo(warnings=(f"{file.name}: larger than {MAX_SMALL_FILE} bytes, not read",))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return MlModelInfo(warnings=(f"{file.name}: not valid YAML{where}",))
    except (ValueError, TypeError, RecursionError) as e:
        return MlModelInfo(warnings=(f"{file.name}: cannot be read ({e})",))
    if not isinstance(data, dict):
        return MlModelInfo(warnings=(f"{file.name}: expected a YAML mapping",))

    warnings: list[str] = []
    raw_flavors = data.get("flavors")
    flavors: list[Flavor] = []
    if isinstance(raw_flavors, dict):
        flavors = [_read_flavor(str(name), body, warnings) for name, body in raw_flavors.items()]
    else:
        warnings.append(f"{file.name}: no 'flavors' mapping")
    framework = next((f for f in flavors if f.name != PYFUNC), None)
    pyfunc = next((f for f in flavors if f.name == PYFUNC), None)

    files: list[str] = []
    for f in ([framework] if framework else []) + [f for f in flavors if f is not framework]:
        files += [x for x in f.files if x not in files]
    code_paths = tuple(dict.fromkeys(f.code for f in flavors if f.code))
    env_files = tuple(x for x in (pyfunc.env_conda, pyfunc.env_virtualenv) if x) if pyfunc else ()
    size = data.get("model_size_bytes")
    return MlModelInfo(
        flavors=tuple(flavors),
        framework=framework.name if framework else None,
        framework_version=framework.version if framework else None,
        mlflow_version=_text(data.get("mlflow_version")),
        model_uuid=_text(data.get("model_uuid")),
        model_id=_text(data.get("model_id")),
        run_id=_text(data.get("run_id")),
        artifact_path=_text(data.get("artifact_path")),
        utc_time_created=_text(data.get("utc_time_created")),
        model_size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        python_version=pyfunc.python_version if pyfunc else None,
        signature=_signature(data.get("signature"), warnings),
        input_example=_input_example(data.get("saved_input_example_info")),
        files=tuple(files),
        code_paths=code_paths,
        env_files=env_files,
        warnings=tuple(warnings),
    )
