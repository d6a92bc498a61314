"""kitbridge: turn ML models into KitOps ModelKits and CNCF ModelPack OCI artifacts, and back."""

__version__ = "0.1.0"
