"""``python -m dancekit`` runs the command line."""

from dancekit.cli import main

if __name__ == "__main__":  # not when a Dask local cluster's worker process re-imports the main module
    main()
