"""`python -m rabbitrun` runs the CLI."""

from rabbitrun.cli.main import main

main()
