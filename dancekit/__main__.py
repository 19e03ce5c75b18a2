"""``python -m dancekit`` runs the command line."""

from dancekit.cli import main

main()
