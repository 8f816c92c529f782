"""`python -m red_engine --socket PATH`: rank 0 (started by red, or rank 0 of torchrun, whose
other ranks run the same command and become workers); `--worker`: a rank that rank 0 started."""

import os
import signal
import sys

from . import MIN_TORCH

PREFIX = "red-engine-error: "


def main(argv):
    try:
        import torch
    except ImportError as err:
        sys.stderr.write(f"{PREFIX}{sys.executable} cannot import torch ({err}); install PyTorch or set engine.python\n")
        return 3
    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2] if x.isdigit())
    if version < MIN_TORCH:
        need = ".".join(map(str, MIN_TORCH))
        sys.stderr.write(f"{PREFIX}{sys.executable} has torch {torch.__version__}; the engine needs torch >= {need}\n")
        return 3
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # red owns Ctrl-C and ends the ranks itself
    from .server import serve, work

    if "--worker" in argv or int(os.environ.get("RANK", "0")) != 0:
        work()
        return 0
    if "--socket" not in argv:
        sys.stderr.write(f"{PREFIX}usage: python -m red_engine --socket PATH\n")
        return 2
    if os.environ.get("RED_ENGINE_PARENT") == str(os.getppid()):
        from .dist import die_with_parent

        die_with_parent(signal.SIGTERM)
    serve(argv[argv.index("--socket") + 1])
    return 0


sys.exit(main(sys.argv[1:]))
