"""The email worker's ledger: which emails were sent, so a redelivered job sends nothing twice.

Claim, send, mark sent: the claim is a conditional put (nobody holds the key, or the holder's lease ran out), the
mark an update conditioned on still holding the claim. A worker that dies between SES's answer and the mark leaves
a claim whose lease runs out, and the job's redelivery sends again: at least once, a rare duplicate rather than a
lost receipt (docs/email.md).
"""

from __future__ import annotations

from enum import StrEnum

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from chalicelib.storage.conditions import condition_failed
from chalicelib.storage.models import SentEmail

SENDING = "sending"
SENT = "sent"


class Claim(StrEnum):
    TAKEN = "taken"  # ours: send, then mark_sent (or release)
    SENT = "sent"  # sent already: nothing to do
    HELD = "held"  # another attempt holds a live lease: try later


class EmailLedger:
    """Raises pynamodb's errors for anything but a refused condition."""

    def claim(self, key: str, claim: str, *, now: int, lease_seconds: int, keep_seconds: int) -> Claim:
        item = SentEmail(
            key, state=SENDING, claim=claim, lease_until=now + lease_seconds, expires_at=now + keep_seconds
        )
        try:
            item.save(
                condition=SentEmail.key.does_not_exist()
                | ((SentEmail.state == SENDING) & (SentEmail.lease_until < now))
            )
        except PutError as exc:
            if not condition_failed(exc):
                raise
            return self._why_not(key)
        return Claim.TAKEN

    def _why_not(self, key: str) -> Claim:
        try:
            current = SentEmail.get(key, consistent_read=True)
        except SentEmail.DoesNotExist:
            return Claim.HELD  # released between our put and this read: the redelivery will take it
        return Claim.SENT if current.state == SENT else Claim.HELD

    def mark_sent(self, key: str, claim: str, *, message_id: str, now: int) -> None:
        """Record the send. A claim taken over meanwhile (our lease ran out) is left alone: its holder sends."""
        try:
            SentEmail(key).update(
                actions=[
                    SentEmail.state.set(SENT),
                    SentEmail.message_id.set(message_id),
                    SentEmail.sent_at.set(now),
                    SentEmail.lease_until.remove(),
                ],
                condition=SentEmail.claim == claim,
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise

    def release(self, key: str, claim: str) -> None:
        """Give the key back after a failed send, so the job's next delivery can claim it at once."""
        try:
            SentEmail(key).delete(condition=(SentEmail.claim == claim) & (SentEmail.state == SENDING))
        except DeleteError as exc:
            if not condition_failed(exc):
                raise

    def state(self, key: str) -> str | None:
        try:
            return SentEmail.get(key, consistent_read=True).state
        except SentEmail.DoesNotExist:
            return None
