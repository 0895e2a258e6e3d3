"""`python -m autoenc ...`, the same as the `autoenc` command."""
from .cli import main

main()
