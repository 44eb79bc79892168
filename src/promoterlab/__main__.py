"""``python -m promoterlab``: the command line."""

from promoterlab.cli import main

main()
