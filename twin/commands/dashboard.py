"""`twin dashboard`: serve the training dashboard (live exercises in the browser)."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
from typing import Any

from twin.commands.common import err
from twin.errors import InputError

ORDER = 60


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.backend == "mininet" and os.geteuid() != 0:
        raise InputError("--backend mininet needs root (the emulated network uses namespaces)")
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a TCP port")
    token = args.trainer_token or secrets.token_urlsafe(12)
    if len(token) < 8:
        raise InputError("--trainer-token needs at least 8 characters")
    from dashboard.app import serve
    from dashboard.classroom import Classroom

    room = Classroom(token, backend=args.backend)
    shown = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
    err.print(f"training dashboard: http://{shown}:{args.port}/  (Ctrl-C to stop)", markup=False)
    err.print(f"trainer token: {token}  (the Trainer page asks for it)", markup=False)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            "listening beyond this machine: trainees join team exercises with their code; "
            "only the token holder can run the trainer view",
            markup=False,
        )
    # SIGTERM ends the server as Ctrl-C does: every exercise's process is stopped first
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve(room, args.host, args.port)
    except KeyboardInterrupt:
        err.print("dashboard stopped", markup=False)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def register(sub: Any) -> None:
    d = sub.add_parser(
        "dashboard",
        help="serve the training dashboard (live exercises in the browser)",
        description=(
            "Serve the training dashboard: trainees run exercises (a scenario live, alerts, "
            "responses, an after-action score); trainers run team exercises with the token "
            "printed at start."
        ),
    )
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    d.add_argument(
        "--trainer-token",
        metavar="TOKEN",
        help="the trainer view's token (default: a random one, printed)",
    )
    d.add_argument(
        "--backend",
        choices=["sim", "mininet"],
        default="sim",
        help="network backend of the exercises (mininet needs root)",
    )
    d.set_defaults(func=cmd_dashboard)
