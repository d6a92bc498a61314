"""``python -m benchmarks <name> [options]``: run one benchmark and write its results."""

from __future__ import annotations

import argparse
import sys

from benchmarks import batch_bench, convert_bench, hf_bench, pack_bench, transfer_bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = ap.add_subparsers(dest="name", required=True)
    pack_bench.add_arguments(sub.add_parser("pack", help="pack (tar and raw layers) vs hashlib sha256"))
    transfer_bench.add_arguments(
        sub.add_parser("transfer", help="push/pull vs skopeo copy and oras-py, through a local registry")
    )
    convert_bench.add_arguments(
        sub.add_parser("convert", help="KitOps -> ModelPack inside a registry: time and bytes uploaded")
    )
    hf_bench.add_arguments(
        sub.add_parser("hf", help="import hf:// from a local test Hub vs huggingface_hub snapshot_download")
    )
    batch_bench.add_arguments(
        sub.add_parser("batch", help="20 conversions: batch --jobs 4 vs one convert command each, and rerun")
    )
    args = ap.parse_args(argv)
    if args.name == "pack":
        return pack_bench.run(args)
    if args.name == "transfer":
        return transfer_bench.run(args)
    if args.name == "convert":
        return convert_bench.run(args)
    if args.name == "hf":
        return hf_bench.run(args)
    if args.name == "batch":
        return batch_bench.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
