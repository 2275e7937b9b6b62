"""`python -m irestore ...` runs the command-line app (what `torchrun -m irestore train` needs)."""

from irestore.cli.app import main

main()
