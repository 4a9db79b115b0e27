"""Fixtures of the end-to-end tests: the outside world the pipeline processes talk to, as one."""

from __future__ import annotations

import pytest

from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from tests.e2e.pipeline import OutsideWorld


@pytest.fixture
def world(
    docspace_sim: DocSpaceSimulator, smtp_server: MailCatcher, pipeline_receiver: PipelineReceiver
) -> OutsideWorld:
    """The started simulator, SMTP server and pipeline receiver of one test, stopped after it."""
    return OutsideWorld(docspace_sim, smtp_server, pipeline_receiver)
