"""One module per `hallmark` subcommand; each exposes `run(args) -> int` (the exit code)."""
