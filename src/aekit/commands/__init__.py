"""CLI subcommands that live beside the code they drive; each module defines ``add_commands(subparsers)``."""
