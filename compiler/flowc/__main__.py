"""Allow ``python -m flowc``."""

from flowc.cli import main

main()
