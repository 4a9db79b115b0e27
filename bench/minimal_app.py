"""Baseline 1: a minimal Falcon endpoint on the ingress's own waitress settings that reads the body and answers 200."""

from __future__ import annotations

import falcon
import waitress

from ingress.settings import WEBHOOK_PATH, IngressSettings


class _Minimal:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.media = {"status": "accepted"}

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def main() -> None:
    app = falcon.App()
    app.add_route(WEBHOOK_PATH, _Minimal())
    app.add_route("/readyz", _Minimal())
    waitress.serve(app, **IngressSettings().waitress_options())


if __name__ == "__main__":
    main()
