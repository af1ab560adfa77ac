"""``python -m reactor``: the CLI.

``python -m`` puts the current directory first on ``sys.path``; run from inside an app
directory, the app's own ``schema.py`` would then shadow the ``schema`` package. Drop that entry
unless the current directory is the Reactor source tree itself.
"""

import os
import sys

_cwd = os.getcwd()
if not os.path.isfile(os.path.join(_cwd, "reactor", "__init__.py")):
    sys.path[:] = [p for p in sys.path if p not in ("", _cwd)]

from reactor.server.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
