"""Run the DocSpace simulator standalone: ``python -m simulator --port 8090 --api-key sk-... [--seed-demo]``.

The API key and the webhook secret default to ``DOCSPACE_API_KEY`` and ``DOCSPACE_WEBHOOK_SECRET``, so a simulator
started with the pipeline's settings (the compose demo) is the portal those settings describe.
"""

from __future__ import annotations

import argparse
import os
import sys

from simulator.demo import seed_demo, upload_demo_files
from simulator.model import ApiError
from simulator.server import DEFAULT_API_KEY, DocSpaceSimulator
from standins.serve import serve_until_stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=os.environ.get("DOCSPACE_API_KEY") or DEFAULT_API_KEY)
    parser.add_argument(
        "--seed-demo", action="store_true", help="create the demo client room 'Acme Ltd' with Uploads/2026/November"
    )
    parser.add_argument(
        "--upload-demo-files",
        action="store_true",
        help="with --seed-demo: upload an invoice and a photo once the webhook is registered",
    )
    parser.add_argument("--move-delay", type=float, default=0.5, help="seconds before a move operation finishes")
    parser.add_argument("--retry-delays", default="1,2,4,8,16", help="webhook retry pauses in seconds, comma-separated")
    parser.add_argument("--webhook-url", help="register a webhook to this URL at start (no HEAD check)")
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("DOCSPACE_WEBHOOK_SECRET"),
        help="secret for --webhook-url (default: $DOCSPACE_WEBHOOK_SECRET)",
    )
    parser.add_argument("--webhook-triggers", default="file.created,file.uploaded")
    parser.add_argument("--seed", type=int, help="seed for random fault injection")
    parser.add_argument(
        "--public-url", help="the address people open, for the links in file data (default: where it listens)"
    )
    args = parser.parse_args(argv)
    if args.upload_demo_files and not args.seed_demo:
        parser.error("--upload-demo-files needs --seed-demo")

    sim = DocSpaceSimulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        move_delay=args.move_delay,
        retry_delays=[float(x) for x in args.retry_delays.split(",") if x.strip()],
        seed=args.seed,
    ).start()
    print(f"DocSpace simulator listening on {sim.base_url}", flush=True)
    if args.public_url:
        sim.portal.base_url = args.public_url.rstrip("/")
    print(f"rooms root id: {sim.rooms_root_id}", flush=True)
    if args.webhook_url:
        if not args.webhook_secret:
            parser.error("--webhook-url needs --webhook-secret")
        try:
            # No HEAD check here: the receiver is often started after the simulator in a demo.
            cid = sim.register_webhook(
                args.webhook_url, args.webhook_secret, triggers=args.webhook_triggers.split(","), check=False
            )
        except ApiError as exc:
            parser.error(exc.message)
        print(f"webhook id: {cid} -> {args.webhook_url}", flush=True)
    if args.seed_demo:
        portal = seed_demo(sim)
        print(f"demo room id: {portal.room_id}", flush=True)
        print(f"demo uploads folder id: {portal.upload_folder_id}", flush=True)
        if args.upload_demo_files:
            invoice = upload_demo_files(sim, portal)
            print(f"demo invoice file id: {invoice}", flush=True)

    return serve_until_stopped(sim.stop)


if __name__ == "__main__":
    sys.exit(main())
