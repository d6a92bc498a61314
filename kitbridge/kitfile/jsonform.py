"""The Kitfile's JSON form: the ModelKit config blob, byte for byte as kit's ``json.Marshal(kitFile)``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import is_dataclass
from typing import Any, TypeVar

from kitbridge.errors import KitfileError
from kitbridge.kitfile.model import (
    Code,
    DataSet,
    Docs,
    Kitfile,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    kit_fields,
)
from kitbridge.oci import gojson
from kitbridge.oci.gojson import Struct


def _put(out: Struct, key: str, value: Any) -> None:
    # Go omitempty: "" and empty lists are left out.
    if value != "" and value != []:
        out[key] = value


def _layer(out: Struct, digest: str, diff_id: str) -> Struct:
    _put(out, "digest", digest)
    _put(out, "diffId", diff_id)
    return out


def _struct(struct: Any) -> Struct:
    """A Kitfile struct as Go's json.Marshal sees it: field order, omitempty, layer info last."""
    out = Struct()
    for key, value in kit_fields(struct):
        if key in ("manifestVersion", "package") or (key == "path" and isinstance(struct, Docs)):
            # No omitempty on these (package is a struct value, never "empty" to encoding/json).
            out[key] = _struct(value) if key == "package" else value
        elif key == "parameters":
            if value is not None:  # an interface is only "empty" when nil
                out[key] = value
        elif is_dataclass(value):
            out[key] = _struct(value)  # the model pointer, when set
        elif isinstance(value, list):
            _put(out, key, [_struct(v) if is_dataclass(v) else v for v in value])
        elif value is not None:
            _put(out, key, value)
    if hasattr(struct, "diff_id"):
        _layer(out, struct.digest, struct.diff_id)
    return out


def kitfile_struct(kf: Kitfile) -> Struct:
    """The Kitfile as ordered JSON-ready data (Go struct field order, omitempty applied)."""
    return _struct(kf)


def kitfile_json(kf: Kitfile) -> bytes:
    """Exactly what kit's ``json.Marshal(kitFile)`` writes (the config blob when digests are set)."""
    try:
        return gojson.dumps(kitfile_struct(kf))
    except (ValueError, TypeError) as e:
        raise KitfileError(
            f"the Kitfile cannot be written as JSON: {e}",
            "parameters may only hold JSON values (no NaN or infinity)",
        ) from None


# --- config JSON -> model ---------------------------------------------------------------------------------

_T = TypeVar("_T")


class _Reader:
    """Go ``json.Unmarshal`` into kit's struct: unknown keys ignored, keys matched case-insensitively
    when no exact match exists, ``null`` leaves the zero value, a wrong JSON type is an error."""

    def __init__(self) -> None:
        self.where = "config"

    def _fail(self, where: str, want: str, got: Any) -> KitfileError:
        kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
            type(got), "a number"
        )
        return KitfileError(f"invalid ModelKit config: '{where}' must be {want}, got {kind}")

    def fields(self, obj: Any, where: str, names: tuple[str, ...]) -> dict[str, Any]:
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            raise self._fail(where or "config", "an object", obj)
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = key if key in names else next((n for n in names if n.lower() == key.lower()), None)
            if name is not None:
                out[name] = value
        return out

    def string(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._fail(f"{where}.{key}" if where else key, "a string", value)
        return value

    def strings(self, obj: dict[str, Any], key: str, where: str) -> list[str]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(f"{where}.{key}", "an array of strings", value)
        out = []
        for i, item in enumerate(value):
            if item is None:
                item = ""
            if not isinstance(item, str):
                raise self._fail(f"{where}.{key}[{i}]", "a string", item)
            out.append(item)
        return out

    def items(self, obj: dict[str, Any], key: str, where: str, conv: Callable[[Any, str], _T]) -> list[_T]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(f"{where}.{key}" if where else key, "an array", value)
        return [conv(item, f"{where}.{key}[{i}]" if where else f"{key}[{i}]") for i, item in enumerate(value)]

    def record(self, cls: type[_T], obj: Any, where: str, keys: dict[str, str]) -> _T:
        f = self.fields(obj, where, tuple(keys))
        return cls(**{attr: self.string(f, key, where) for key, attr in keys.items()})


_LAYER = {"digest": "digest", "diffId": "diff_id"}


def _decode_json(data: bytes) -> Any:
    def parse_int(text: str) -> Any:
        return -0.0 if text == "-0" else int(text)

    def parse_float(text: str) -> float:
        f = float(text)
        if math.isinf(f):  # Go: "value out of range"
            raise ValueError(f"number {text} out of range")
        return f

    def no_constants(text: str) -> Any:
        raise ValueError(f"invalid JSON value {text}")

    try:
        return json.loads(data, parse_int=parse_int, parse_float=parse_float, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as e:
        raise KitfileError(f"invalid ModelKit config: not valid JSON ({e})") from None


def kitfile_from_config_json(data: bytes) -> Kitfile:
    """Read a KitOps config blob (the Kitfile JSON with digest/diffId per entry) back into a Kitfile."""
    doc = _decode_json(data)
    r = _Reader()
    top = r.fields(
        doc, "", ("manifestVersion", "package", "model", "code", "datasets", "docs", "prompts", "mcpServers")
    )

    pkg = r.fields(top.get("package"), "package", ("name", "version", "description", "license", "authors"))
    package = Package(
        name=r.string(pkg, "name", "package"),
        version=r.string(pkg, "version", "package"),
        description=r.string(pkg, "description", "package"),
        license=r.string(pkg, "license", "package"),
        authors=r.strings(pkg, "authors", "package"),
    )

    def part(obj: Any, where: str) -> ModelPart:
        return r.record(
            ModelPart,
            obj,
            where,
            {"name": "name", "path": "path", "license": "license", "type": "type"} | _LAYER,
        )

    model: Model | None = None
    if top.get("model") is not None:
        keys = {
            "name": "name",
            "path": "path",
            "license": "license",
            "framework": "framework",
            "format": "format",
            "version": "version",
            "description": "description",
        } | _LAYER
        m = r.fields(top["model"], "model", (*keys, "parts", "parameters"))
        model = Model(
            **{attr: r.string(m, key, "model") for key, attr in keys.items()},
            parts=r.items(m, "parts", "model", part),
            parameters=m.get("parameters"),
        )

    def dataset(obj: Any, where: str) -> DataSet:
        keys = {
            "name": "name",
            "path": "path",
            "remotePath": "remote_path",
            "remoteHash": "remote_hash",
            "description": "description",
            "license": "license",
        } | _LAYER
        f = r.fields(obj, where, (*keys, "parameters"))
        return DataSet(
            **{attr: r.string(f, key, where) for key, attr in keys.items()}, parameters=f.get("parameters")
        )

    def simple(cls: type[_T], keys: dict[str, str]) -> Callable[[Any, str], _T]:
        return lambda obj, where: r.record(cls, obj, where, keys | _LAYER)

    named = {"name": "name", "path": "path", "description": "description"}
    return Kitfile(
        manifest_version=r.string(top, "manifestVersion", ""),
        package=package,
        model=model,
        code=r.items(
            top,
            "code",
            "",
            simple(Code, {"path": "path", "description": "description", "license": "license"}),
        ),
        datasets=r.items(top, "datasets", "", dataset),
        docs=r.items(top, "docs", "", simple(Docs, {"path": "path", "description": "description"})),
        prompts=r.items(top, "prompts", "", simple(Prompt, named)),
        mcp_servers=r.items(top, "mcpServers", "", simple(McpServer, named)),
    )
