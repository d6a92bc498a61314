"""MLflow MLmodel files (MLflow 2 and 3 shapes): flavors, ids, signature, and the files flavors name."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitbridge.profile.mlmodel import read_mlmodel

# What MLflow 3 writes for mlflow.sklearn.log_model(name=..., input_example=...).
SKLEARN_SKOPS_MLFLOW3 = """artifact_path: file:///tmp/mlruns/1/models/m-0a24c301ab8840bc9af390a84b80d1ca/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.9
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.5.2
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.1.4
model_id: m-0a24c301ab8840bc9af390a84b80d1ca
model_size_bytes: 117149
model_uuid: m-0a24c301ab8840bc9af390a84b80d1ca
prompts: null
run_id: 627648c8e53549f0acf8ebeb6b27aba8
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}, {"type": "long",
    "name": "age", "required": true}, {"type": "string", "name": "note", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
type_hint_from_example: false
utc_time_created: '2025-08-04 11:00:46.002863'
"""

# What MLflow 2 wrote for mlflow.sklearn.log_model(model, "model") with the default cloudpickle format.
SKLEARN_PICKLE_MLFLOW2 = """artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.10.12
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.3.2
mlflow_version: 2.9.2
model_size_bytes: 1020
model_uuid: 5a0b3e4c2f9d4f7e9a6b1c2d3e4f5a6b
run_id: 0f1e2d3c4b5a69788796a5b4c3d2e1f0
utc_time_created: '2024-01-15 09:30:00.123456'
"""

TRANSFORMERS_MLMODEL = """artifact_path: file:///srv/mlflow/artifacts/2/models/m-5f3c/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.transformers
    python_version: 3.11.9
  transformers:
    code: null
    components:
    - tokenizer
    framework: pt
    instance_type: TextClassificationPipeline
    model_binary: model
    pipeline_model_type: DistilBertForSequenceClassification
    source_model_name: distilbert/distilbert-base-uncased-finetuned-sst-2-english
    source_model_revision: 714eb0fa89d2f80546fda750413ed43d93601a13
    task: text-classification
    tokenizer_type: DistilBertTokenizerFast
    torch_dtype: torch.float32
    transformers_version: 4.44.2
mlflow_version: 3.1.4
model_id: m-5f3c
model_uuid: m-5f3c
signature:
  inputs: '[{"type": "string", "required": true}]'
  outputs: '[{"type": "string", "name": "label", "required": true}, {"type": "double",
    "name": "score", "required": true}]'
  params: '[{"name": "top_k", "type": "long", "default": 1, "shape": null}, {"name":
    "labels", "type": "string", "default": ["a", "b"], "shape": [-1]}]'
utc_time_created: '2025-09-01 12:00:00.000000'
"""

PYTORCH_MLMODEL = """artifact_path: model
flavors:
  python_function:
    data: data
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pytorch
    pickle_module_name: mlflow.pytorch.pickle_module
    python_version: 3.10.14
  pytorch:
    code: code
    model_data: data
    pytorch_version: 2.3.1
mlflow_version: 2.14.1
model_uuid: 9d0f4a7e3b2c4d5e8f9a0b1c2d3e4f5a
run_id: 1a2b3c4d5e6f
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1, 28, 28]},
    "name": "image"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]'
  params: null
utc_time_created: 2024-06-01 08:00:00.5
"""


def mlmodel(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "MLmodel"
    p.write_text(text)
    return p


def test_mlflow3_sklearn_skops(tmp_path: Path) -> None:
    info = read_mlmodel(mlmodel(tmp_path, SKLEARN_SKOPS_MLFLOW3))
    assert info.flavor_names == ("python_function", "sklearn")
    assert (info.framework, info.framework_version) == ("sklearn", "1.5.2")
    sk = info.flavors[1]
    assert sk.serialization_format == "skops"
    assert sk.files == ("model.skops",)
    assert sk.options == {}
    pyfunc = info.flavors[0]
    assert (pyfunc.loader_module, pyfunc.python_version) == ("mlflow.sklearn", "3.11.9")
    assert (pyfunc.env_conda, pyfunc.env_virtualenv) == ("conda.yaml", "python_env.yaml")
    assert pyfunc.options == {"predict_fn": "predict"}
    assert info.mlflow_version == "3.1.4"
    assert info.model_id == info.model_uuid == "m-0a24c301ab8840bc9af390a84b80d1ca"
    assert info.run_id == "627648c8e53549f0acf8ebeb6b27aba8"
    assert info.artifact_path is not None and info.artifact_path.startswith("file:///")
    assert info.utc_time_created == "2025-08-04 11:00:46.002863"
    assert info.model_size_bytes == 117149
    assert info.python_version == "3.11.9"
    assert info.files == ("model.skops",)
    assert info.env_files == ("conda.yaml", "python_env.yaml")
    assert info.code_paths == ()
    assert info.warnings == ()

    sig = info.signature
    assert sig is not None
    assert [(f.name, f.type, f.required) for f in sig.inputs] == [
        ("amount", "double", True),
        ("age", "long", True),
        ("note", "string", False),
    ]
    assert sig.input_kind == "columns"
    assert [(f.name, f.type, f.dtype, f.shape) for f in sig.outputs] == [(None, "tensor", "int64", (-1,))]
    assert sig.params == ()

    ex = info.input_example
    assert ex is not None
    assert (ex.artifact_path, ex.serving_input_path, ex.type, ex.pandas_orient) == (
        "input_example.json",
        "serving_input_example.json",
        "dataframe",
        "split",
    )


def test_mlflow2_sklearn_pickle(tmp_path: Path) -> None:
    info = read_mlmodel(mlmodel(tmp_path, SKLEARN_PICKLE_MLFLOW2))
    assert info.framework == "sklearn"
    assert info.flavors[1].serialization_format == "cloudpickle"
    assert info.files == ("model.pkl",)
    assert info.model_id is None
    assert info.model_uuid == "5a0b3e4c2f9d4f7e9a6b1c2d3e4f5a6b"
    assert info.artifact_path == "model"
    assert info.mlflow_version == "2.9.2"
    assert info.signature is None
    assert info.input_example is None
    assert info.warnings == ()


def test_transformers_flavor_with_signature_and_params(tmp_path: Path) -> None:
    info = read_mlmodel(mlmodel(tmp_path, TRANSFORMERS_MLMODEL))
    assert (info.framework, info.framework_version) == ("transformers", "4.44.2")
    tf = info.flavors[1]
    assert (tf.task, tf.instance_type) == ("text-classification", "TextClassificationPipeline")
    assert tf.files == ("model",)
    assert tf.options["source_model_name"] == "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    assert tf.options["pipeline_model_type"] == "DistilBertForSequenceClassification"
    assert "components" not in tf.options  # a list, not a scalar
    assert info.flavors[0].loader_module == "mlflow.transformers"
    assert info.files == ("model",)
    sig = info.signature
    assert sig is not None
    assert [(f.name, f.type) for f in sig.inputs] == [(None, "string")]
    assert [(f.name, f.type) for f in sig.outputs] == [("label", "string"), ("score", "double")]
    assert [(p.name, p.type, p.default, p.shape) for p in sig.params] == [
        ("top_k", "long", "1", None),
        ("labels", "string", '["a", "b"]', (-1,)),
    ]


def test_pytorch_flavor_with_tensor_signature_code_and_unquoted_time(tmp_path: Path) -> None:
    info = read_mlmodel(mlmodel(tmp_path, PYTORCH_MLMODEL))
    assert (info.framework, info.framework_version) == ("pytorch", "2.3.1")
    assert info.files == ("data",)
    assert info.code_paths == ("code",)
    assert info.flavors[0].options["pickle_module_name"] == "mlflow.pytorch.pickle_module"
    sig = info.signature
    assert sig is not None and sig.input_kind == "tensors"
    assert [(f.name, f.dtype, f.shape) for f in sig.inputs] == [("image", "float32", (-1, 1, 28, 28))]
    assert info.utc_time_created is not None and info.utc_time_created.startswith("2024-06-01 08:00:00")


def test_custom_pyfunc_has_no_framework_and_lists_its_artifacts(tmp_path: Path) -> None:
    text = """flavors:
  python_function:
    artifacts:
      vocab:
        path: artifacts/vocab.json
        uri: /tmp/vocab.json
      weights:
        path: artifacts/weights.npz
        uri: s3://bucket/weights.npz
    cloudpickle_version: 3.0.0
    code: null
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.4
    streamable: false
mlflow_version: 2.16.0
model_uuid: abc
"""
    info = read_mlmodel(mlmodel(tmp_path, text))
    assert info.framework is None
    assert info.flavor_names == ("python_function",)
    assert info.files == ("python_model.pkl", "artifacts/vocab.json", "artifacts/weights.npz")
    assert info.flavors[0].options == {"cloudpickle_version": "3.0.0", "streamable": "false"}


def test_xgboost_version_key_is_found(tmp_path: Path) -> None:
    text = """flavors:
  python_function: {data: model.xgb, loader_module: mlflow.xgboost, python_version: 3.11.4}
  xgboost: {code: null, data: model.xgb, model_class: xgboost.sklearn.XGBClassifier, model_format: xgb,
    xgb_version: 2.0.3}
mlflow_version: 2.16.0
"""
    info = read_mlmodel(mlmodel(tmp_path, text))
    assert (info.framework, info.framework_version) == ("xgboost", "2.0.3")
    assert info.flavors[1].options == {"model_class": "xgboost.sklearn.XGBClassifier", "model_format": "xgb"}
    assert info.files == ("model.xgb",)


def test_paths_leaving_the_model_folder_are_dropped_with_a_warning(tmp_path: Path) -> None:
    text = """flavors:
  sklearn: {pickled_model: ../../etc/passwd, sklearn_version: 1.5.2}
  python_function: {model_path: /abs/model.pkl, data: 's3://bucket/x', loader_module: mlflow.sklearn}
"""
    info = read_mlmodel(mlmodel(tmp_path, text))
    assert info.files == ()
    assert len(info.warnings) == 3
    assert all("not a path inside the model folder" in w for w in info.warnings)


def test_directory_finds_mlmodel(tmp_path: Path) -> None:
    mlmodel(tmp_path, SKLEARN_PICKLE_MLFLOW2)
    assert read_mlmodel(tmp_path).framework == "sklearn"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("flavors: [unclosed\n", "not valid YAML (line"),
        ("- a\n- b\n", "expected a YAML mapping"),
        ("mlflow_version: 2.0.0\n", "no 'flavors' mapping"),
        ("", "expected a YAML mapping"),
    ],
)
def test_malformed_mlmodel_is_a_warning(tmp_path: Path, text: str, fragment: str) -> None:
    info = read_mlmodel(mlmodel(tmp_path, text))
    assert info.flavors == ()
    assert fragment in info.warnings[0]


def test_bad_signature_json_is_a_warning_and_the_rest_is_kept(tmp_path: Path) -> None:
    text = SKLEARN_PICKLE_MLFLOW2 + "signature:\n  inputs: '[{\"type\": \"double\",'\n  outputs: '{}'\n"
    info = read_mlmodel(mlmodel(tmp_path, text))
    assert info.framework == "sklearn"
    assert info.signature is not None and info.signature.inputs == () and info.signature.outputs == ()
    assert any("signature inputs is not valid JSON" in w for w in info.warnings)
    assert any("signature outputs is not a list" in w for w in info.warnings)


def test_array_and_object_column_types(tmp_path: Path) -> None:
    text = (
        "flavors: {python_function: {loader_module: mlflow.pyfunc.model}}\n"
        "signature:\n"
        '  inputs: \'[{"type": "array", "items": {"type": "string"}, "name": "tokens"},'
        ' {"type": "object", "properties": {"a": {"type": "long"}}, "name": "meta"}]\'\n'
    )
    sig = read_mlmodel(mlmodel(tmp_path, text)).signature
    assert sig is not None
    assert [(f.name, f.type) for f in sig.inputs] == [("tokens", "array<string>"), ("meta", "object")]


def test_missing_mlmodel_is_a_warning(tmp_path: Path) -> None:
    info = read_mlmodel(tmp_path / "MLmodel")
    assert info.flavors == ()
    assert "cannot read" in info.warnings[0]
