"""`python -m mock_server` starts the mock; see `--help`."""

from .cli import main

main()
