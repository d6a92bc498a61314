"""OCI primitives: digests, descriptors, references, Go-compatible JSON and tar, the local store."""
