"""``python -m nexus.cli``: the same as the `nexus` console script."""

from nexus.cli import main

if __name__ == "__main__":
    main()
