"""The Kitfile: typed model, YAML 1.2 loading like kit's yaml.v3, kit's validation, JSON and YAML output."""

from kitbridge.kitfile.dump import dump_kitfile
from kitbridge.kitfile.jsonform import kitfile_from_config_json, kitfile_json
from kitbridge.kitfile.model import (
    KITFILE_NAMES,
    LAYER_KINDS,
    MANIFEST_VERSION,
    Code,
    DataSet,
    Docs,
    Kitfile,
    LayerEntry,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    clean_path,
    find_kitfile,
    is_modelkit_reference,
    load_kitfile,
    read_kitfile,
)
from kitbridge.kitfile.validate import KitfileValidationError, PathType, path_type, validate_kitfile

__all__ = [
    "KITFILE_NAMES",
    "LAYER_KINDS",
    "MANIFEST_VERSION",
    "Code",
    "DataSet",
    "Docs",
    "Kitfile",
    "KitfileValidationError",
    "LayerEntry",
    "McpServer",
    "Model",
    "ModelPart",
    "Package",
    "PathType",
    "Prompt",
    "clean_path",
    "dump_kitfile",
    "find_kitfile",
    "is_modelkit_reference",
    "kitfile_from_config_json",
    "kitfile_json",
    "load_kitfile",
    "path_type",
    "read_kitfile",
    "validate_kitfile",
]
