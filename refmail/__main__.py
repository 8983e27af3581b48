"""``python -m refmail``: see refmail.cli."""

from refmail.cli import main

raise SystemExit(main())
