"""CLI subcommands, one module each, named as its command: `HELP`, `add_arguments(parser)` and
`run(args) -> int`."""
