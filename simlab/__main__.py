"""``simlab`` and ``python -m simlab``: the signal handlers first, the figure workers' fork server
if the command will surely need it, then the (heavy) command line.

NumPy, SciPy and matplotlib take a second or more to import; Ctrl-C or SIGTERM meanwhile ends
with one line and exit status 130 or 143, never a traceback. The fork server
(:mod:`simlab.fork_server`) warms up on another core during those imports.
"""

import sys

from simlab import interrupts


def main() -> None:
    interrupts.install()
    try:
        from simlab.fork_server import check_draws_in_workers, own_this_process, prestart

        own_this_process()  # the figure workers may fork from a warmed fork server
        if check_draws_in_workers(sys.argv[1:]):
            # before the arguments are parsed: a check that then refuses its input has started
            # a server for nothing (it ends with this process)
            prestart()
        from simlab.cli import main as cli_main
    except KeyboardInterrupt as exc:
        sys.stderr.write("simlab: interrupted\n")
        raise SystemExit(interrupts.exit_status(exc)) from None
    cli_main()


if __name__ == "__main__":
    main()
