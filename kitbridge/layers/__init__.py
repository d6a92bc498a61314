"""Layer contents: which context entries a layer holds and the streamed, hashed blob bytes.

``ignore`` (.kitignore matching as kit does it), ``walk`` (kit's walk order and exclusions),
``write`` (tar / raw layer writers that hash while writing, optionally gzip or zstd);
``extract`` reads layers back (unpack).
"""
