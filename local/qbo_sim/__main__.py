"""``python -m local.qbo_sim --host 127.0.0.1 --port 8910 [--config FILE.json] ...``

Prints the base URL on stdout, then serves until interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

import uvicorn

from local.qbo_sim.app import create_app
from local.qbo_sim.config import SimConfig, limit_config_from_dict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.qbo_sim", description="Local QuickBooks Online simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8910)
    parser.add_argument(
        "--config", type=Path, help="JSON file with SimConfig keys (see docs/qbo-simulator.md)"
    )
    parser.add_argument("--access-token-ttl", type=int, help="access-token lifetime, seconds (default 3600)")
    parser.add_argument(
        "--refresh-token-rotation-seconds",
        type=int,
        help="0 = rotate the refresh token on every refresh (default)",
    )
    parser.add_argument("--no-limits", action="store_true", help="turn Intuit's rate limits off")
    parser.add_argument("--latency-ms", type=float, help="fixed latency added to every QBO request")
    parser.add_argument("--jitter-ms", type=float, help="random extra latency, 0..N ms")
    parser.add_argument(
        "--company",
        action="append",
        default=[],
        metavar="REALM_ID",
        help="create a seeded company with this realm id at start (repeatable)",
    )
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="CLIENT_ID:SECRET:REDIRECT_URI",
        help="register an app at start (repeatable)",
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> SimConfig:
    """Merge the config file and the flags. Raises ValueError for invalid values."""
    data = json.loads(args.config.read_text()) if args.config else {}
    config = SimConfig.from_dict(data)
    if args.access_token_ttl is not None:
        config.access_token_ttl = args.access_token_ttl
    if args.refresh_token_rotation_seconds is not None:
        config.refresh_token_rotation_seconds = args.refresh_token_rotation_seconds
    if args.no_limits:
        config.limits = limit_config_from_dict({"enabled": False}, config.limits)
    if args.latency_ms is not None:
        config.latency_fixed_ms = args.latency_ms
    if args.jitter_ms is not None:
        config.latency_jitter_ms = args.jitter_ms
    for realm in args.company:
        config.companies.append({"realm_id": realm, "company_name": f"Sandbox Company {realm}"})
    for spec in args.app:
        client_id, _, rest = spec.partition(":")
        secret, _, redirect = rest.partition(":")
        if not client_id or not secret or not redirect:
            raise ValueError("--app takes CLIENT_ID:SECRET:REDIRECT_URI")
        config.apps.append({"client_id": client_id, "client_secret": secret, "redirect_uris": [redirect]})
    return SimConfig.from_dict(config.as_dict() | {"limits": config.limits.__dict__})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
    except (ValueError, OSError) as exc:
        print(f"qbo_sim: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    # Bind before printing: once the URL is printed, connections queue in the backlog until uvicorn
    # accepts them, so a caller can use the URL at once. IPPROTO_TCP keeps TCP_NODELAY on (see server.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"qbo_sim: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    sock.listen(1024)
    print(f"http://{args.host}:{sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=2)
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
