"""kitbridge: turn ML models into KitOps ModelKits and CNCF ModelPack OCI artifacts, and back.

The public API: every function takes and returns typed objects, raises only
:mod:`kitbridge.errors` types, and never prints.
"""

from kitbridge.errors import KitbridgeError
from kitbridge.kitfile import Kitfile, dump_kitfile, load_kitfile, read_kitfile, validate_kitfile
from kitbridge.modelkits import ModelKit, info, inspect, list_modelkits, load_modelkit, remove, tag
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.pack import PackResult, pack
from kitbridge.unpack import UnpackResult, unpack

__version__ = "0.1.0"

__all__ = [
    "Descriptor",
    "KitbridgeError",
    "Kitfile",
    "ModelKit",
    "PackResult",
    "Reference",
    "UnpackResult",
    "dump_kitfile",
    "info",
    "inspect",
    "list_modelkits",
    "load_kitfile",
    "load_modelkit",
    "pack",
    "read_kitfile",
    "remove",
    "tag",
    "unpack",
    "validate_kitfile",
]
