"""``python -m simlab``: the signal handlers first, then the (heavy) command line.

NumPy, SciPy and matplotlib take a second or more to import; Ctrl-C or SIGTERM meanwhile ends
with one line and exit status 130 or 143, never a traceback.
"""

import sys

from simlab import interrupts


def main() -> None:
    interrupts.install()
    try:
        from simlab.cli import main as cli_main
    except KeyboardInterrupt as exc:
        sys.stderr.write("simlab: interrupted\n")
        raise SystemExit(interrupts.exit_status(exc)) from None
    cli_main()


if __name__ == "__main__":
    main()
