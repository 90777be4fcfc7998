"""``python -m local.stack`` (``make up``): the QuickBooks simulator and the whole local stack.

Starts the simulator (a seeded company; the Intuit app registered with the redirect URI
``<api_url>/oauth/callback`` and its credentials stored in ``IntuitAppSecret``), then the stack; prints
every endpoint and serves until Ctrl-C / SIGTERM, then stops everything it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local.stack import LocalStack, TemplateError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--repo-root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--simulator-url", help="use a running simulator instead of starting one")
    parser.add_argument("--sim-port", type=int, default=0, help="simulator port (default: a free port)")
    parser.add_argument("--company-name", default="Sandbox Company_US_1")
    parser.add_argument(
        "--parameter",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override",
    )
    parser.add_argument("--echo-logs", action="store_true", help="also print every function log line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"error: --parameter {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        overrides[name] = value

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sim = None
    sim_url = args.simulator_url
    if sim_url is None:
        from local.qbo_sim.server import SimulatorServer

        sim = SimulatorServer(port=args.sim_port).start()
        sim_url = sim.url
    stack = LocalStack(
        args.repo_root,
        parameters_overrides=overrides,
        simulator_url=sim_url,
        template=args.template,
        echo=print if args.echo_logs else None,
        prewarm=True,
    )
    try:
        stack.start()
        from local.qbo_sim.client import SimControl

        company = SimControl(sim_url).create_company(company_name=args.company_name)
        creds = stack.register_intuit_app(sim_url)
        info = stack.describe()
        print("qbsync local stack is up (Ctrl-C stops everything)")
        for lid, url in info["api_urls"].items():
            print(f"  API {lid:<22} {url}")
        print(f"  moto (AWS_ENDPOINT_URL)    {info['moto_endpoint']}")
        print(f"  QuickBooks simulator       {sim_url}  (company {company['realm_id']})")
        print(f"  Intuit app client_id       {creds['client_id']}")
        print(f"  function logs              {info['log_dir']}")
        for lid, name in info["functions"].items():
            print(f"  function {lid:<17} {name}")
        for lid, url in info["queues"].items():
            print(f"  queue {lid:<20} {url}")
        for lid, name in info["tables"].items():
            print(f"  table {lid:<20} {name}")
        for lid, expr in info["schedules"].items():
            print(f"  schedule {lid} {expr}")
        sys.stdout.flush()
        stop.wait()
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", file=sys.stderr)
        stack.stop()
        if sim is not None:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
