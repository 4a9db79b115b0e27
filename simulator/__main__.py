"""Run the DocSpace simulator standalone: ``python -m simulator --port 8090 --api-key sk-... [--seed-demo]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from simulator.server import DEFAULT_API_KEY, DocSpaceSimulator
from simulator.state import ApiError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--seed-demo", action="store_true", help="create a demo client room with an Uploads folder")
    parser.add_argument("--move-delay", type=float, default=0.5, help="seconds before a move operation finishes")
    parser.add_argument("--retry-delays", default="1,2,4,8,16", help="webhook retry pauses in seconds, comma-separated")
    parser.add_argument("--webhook-url", help="register a webhook to this URL at start (no HEAD check)")
    parser.add_argument("--webhook-secret", help="secret for --webhook-url")
    parser.add_argument("--webhook-triggers", default="file.created,file.uploaded")
    parser.add_argument("--seed", type=int, help="seed for random fault injection")
    args = parser.parse_args(argv)

    sim = DocSpaceSimulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        move_delay=args.move_delay,
        retry_delays=[float(x) for x in args.retry_delays.split(",") if x.strip()],
        seed=args.seed,
    ).start()
    print(f"DocSpace simulator listening on {sim.base_url}", flush=True)
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
        room = sim.create_room("Demo Client")
        uploads = sim.create_folder(room, "Uploads")
        print(f"demo room id: {room}", flush=True)
        print(f"demo uploads folder id: {uploads}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
