"""``python -m aekit ...`` is ``aekit ...`` (also what ``torchrun -m aekit train ...`` runs)."""

from .cli import main

raise SystemExit(main())
