"""``catalog`` (the console script) and ``python -m catalog``.

A signal that arrives while the command is still importing ends it quietly (the default action) rather
than with a KeyboardInterrupt traceback; ``catalog.cli.app.main`` then installs the real handling
(``catalog.interrupts``).
"""

import signal


def run() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from catalog.cli.app import main

    main()


if __name__ == "__main__":
    run()
