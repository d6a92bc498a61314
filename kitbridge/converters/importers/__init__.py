"""Importers: turn a source (Hugging Face repo, MLflow run or model, local folder) into a SourceTree.

``importer_for(source)`` picks the importer by URI scheme from the ``kitbridge.importers`` entry
points (see :mod:`kitbridge.converters.importers.base`); ``import_source`` resolves in one call.
"""

from kitbridge.converters.importers.base import (
    BUILTIN_IMPORTERS,
    ENTRY_POINT_GROUP,
    LOCAL_SCHEME,
    NO_PLUGINS_ENV,
    Importer,
    ImporterSpec,
    PluginWarning,
    Provenance,
    SourceFile,
    SourceTree,
    describe_importers,
    import_source,
    importer_for,
    importer_specs,
    load_importer,
    plugins_disabled,
    source_scheme,
)
from kitbridge.converters.importers.local import (
    HFCacheRepo,
    LocalImporter,
    PackContext,
    PathFilter,
    PathGlob,
    local_path,
    materialize,
    packable_in_place,
)

__all__ = [
    "BUILTIN_IMPORTERS",
    "ENTRY_POINT_GROUP",
    "LOCAL_SCHEME",
    "NO_PLUGINS_ENV",
    "HFCacheRepo",
    "Importer",
    "ImporterSpec",
    "LocalImporter",
    "PackContext",
    "PathFilter",
    "PathGlob",
    "PluginWarning",
    "Provenance",
    "SourceFile",
    "SourceTree",
    "describe_importers",
    "import_source",
    "importer_for",
    "importer_specs",
    "load_importer",
    "local_path",
    "materialize",
    "packable_in_place",
    "plugins_disabled",
    "source_scheme",
]
