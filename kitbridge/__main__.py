"""``python -m kitbridge`` runs the CLI."""

from kitbridge.cli.app import main

main()
