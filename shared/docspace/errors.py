"""DocSpace's failures, typed for the stages: permanent ones dead-letter, transient ones carry ``retry_after``."""

from __future__ import annotations

from shared.core.errors import PermanentError, TransientError


class DocSpaceNotFound(PermanentError):
    """404: the file or folder does not exist (or is invisible to this key)."""

    reason = "docspace_not_found"


class DocSpaceAccessDenied(PermanentError):
    """401/403: bad key, missing scope, or no permission on the entry.

    DocSpace answers 403 rather than 401 for a bad key on its ``[AllowAnonymous]`` GET endpoints, so a 403
    here can also mean "check the credentials".
    """

    reason = "docspace_access_denied"


class InvalidDocSpaceId(PermanentError):
    """An id that cannot be a DocSpace id (``..``, ``a/b``, control characters...): refused before any request."""

    reason = "invalid_message"


class DocSpaceRejected(PermanentError):
    """Any other 4xx: the request itself is wrong; repeating it cannot help."""

    reason = "docspace_rejected"


class DocSpaceUnavailable(TransientError):
    """408/429/5xx, a timeout or a connection error: try again later, after ``retry_after`` when known."""

    reason = "docspace_unavailable"


class MoveFailed(PermanentError):
    """The move operation finished with an error (the text is DocSpace's own message)."""

    reason = "docspace_move_failed"


class MoveSkipped(PermanentError):
    """The move finished without error but did nothing: the destination already holds that title (Skip)."""

    reason = "docspace_move_skipped"


class MoveUnconfirmed(TransientError):
    """The move did not report back before the deadline and the file is not (yet) in the destination."""

    reason = "docspace_move_unconfirmed"


class MoveReportLost(TransientError):
    """The finished report was taken by another reader and the file is not in the destination.

    Transient on purpose: the move is safe to repeat (a file already in place counts as moved), and a
    repeat gets a report of its own that says what really happened.
    """

    reason = "docspace_move_report_lost"
