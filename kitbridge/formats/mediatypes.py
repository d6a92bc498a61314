"""Media types and annotation keys of OCI, KitOps and (later) ModelPack artifacts."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

KITOPS_MANIFEST_ARTIFACT = "application/vnd.kitops.modelkit.manifest.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_LAYER_PREFIX = "application/vnd.kitops.modelkit."

ANN_FILEPATH = "org.cncf.model.filepath"
ANN_CREATED = "org.opencontainers.image.created"
ANN_CLI_VERSION = "ml.kitops.modelkit.cli-version"
# Provenance kitbridge records on artifacts it imports or converts (read back by batch jobs to skip
# work that is already done): what the artifact was made from, at which revision, with which options.
ANN_SOURCE = "dev.kitbridge.source"
ANN_SOURCE_REVISION = "dev.kitbridge.source.revision"
ANN_OPTIONS = "dev.kitbridge.options"
ANN_TOOL_VERSION = "dev.kitbridge.version"
ANN_LAYER_SUBTYPE = "ml.kitops.modelkit.layer-subtype"
ANN_REF_NAME = "org.opencontainers.image.ref.name"
