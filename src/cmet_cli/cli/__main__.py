"""``python -m cmet_cli.cli``, as when the CLI was one module."""
from . import main

main(prog_name="cmet")
