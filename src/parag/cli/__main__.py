"""``python -m parag.cli``: the same as the ``parag`` command."""

from parag.cli import main

main()
