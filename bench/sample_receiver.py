"""Baseline 2: a receiver in the style of the official sample: verify, then call DocSpace inline, then answer."""

from __future__ import annotations

import json
import os

import falcon
import requests
import waitress
from requests.adapters import HTTPAdapter

from ingress.settings import WEBHOOK_PATH, IngressSettings
from ingress.signature import SignatureVerifier


class _SampleStyle:
    """GET the file, PUT the move, and only then answer: DocSpace's latency becomes the webhook's latency."""

    def __init__(self, verifier: SignatureVerifier, api: str, key: str, incoming: str) -> None:
        self._verifier = verifier
        self._api = api.rstrip("/") + "/api/2.0/"
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        self._incoming = incoming
        self._http = requests.Session()
        self._http.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=128))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.bounded_stream.read()
        if not self._verifier.verify(body, req.get_header("x-docspace-signature-256")):
            resp.status = falcon.HTTP_401
            return
        file_id = json.loads(body)["payload"]["id"]
        info = self._http.get(f"{self._api}files/file/{file_id}", headers=self._headers, timeout=30)
        info.raise_for_status()
        move = {"fileIds": [file_id], "destFolderId": self._incoming, "conflictResolveType": "Skip"}
        self._http.put(f"{self._api}files/fileops/move", json=move, headers=self._headers, timeout=30)
        resp.media = {"status": "ok"}

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def main() -> None:
    settings = IngressSettings()
    resource = _SampleStyle(
        SignatureVerifier(settings.webhook_secrets()),
        os.environ["DOCSPACE_API_HOST"],
        os.environ["DOCSPACE_API_KEY"],
        os.environ["INCOMING_FOLDER_ID"],
    )
    app = falcon.App()
    app.add_route(WEBHOOK_PATH, resource)
    app.add_route("/readyz", resource)
    waitress.serve(app, **settings.waitress_options())


if __name__ == "__main__":
    main()
