"""The mail catcher's command line: ``python -m standins.mail --smtp-port 1025 --http-port 8025`` (compose demo)."""

from __future__ import annotations

import argparse
import sys
from email.message import EmailMessage

from standins import mail
from standins.mail.catcher import MailCatcher
from standins.serve import serve_until_stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.mail", description=mail.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    args = parser.parse_args(argv)

    def announce(message: EmailMessage, to: list[str]) -> None:
        print(f"mail to {', '.join(to)}: {message['Subject']}", flush=True)

    catcher = MailCatcher(args.smtp_port, announce, host=args.host, http_port=args.http_port).start()
    print(f"mail catcher: SMTP on {args.host}:{args.smtp_port}, web page on {catcher.http_url}", flush=True)
    return serve_until_stopped(catcher.close)


if __name__ == "__main__":
    sys.exit(main())
