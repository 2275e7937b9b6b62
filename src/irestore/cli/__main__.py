"""`python -m irestore.cli` runs the command-line app."""

from irestore.cli.app import main

main()
