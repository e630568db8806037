"""The virtual waiting room (docs/waiting-room.md): on-sale settings, joining, the ticker that draws and admits,
the operators' view, and the gate a seat selection passes in a guarded showtime."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import waitroom as rules
from chalicelib.config import WaitroomTimings
from chalicelib.domain import plausible_id
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.observability import logger, metrics
from chalicelib.services.catalog import CatalogService
from chalicelib.storage.waitroom import Place, Sale, WaitroomRepository

DAY = 24 * 3600


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


class WaitroomService:
    """Raises NotFound, BadRequest, Conflict and the admission errors of chalicelib.waitroom."""

    def __init__(
        self,
        *,
        repo: WaitroomRepository,
        catalog: CatalogService,
        secret: Callable[[], str],
        issuer: str,
        timings: WaitroomTimings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repo = repo
        self._catalog = catalog
        self._secret = secret
        self._issuer = issuer
        self.timings = timings or WaitroomTimings()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sales: dict[str, tuple[float, Sale | None]] = {}
        self._draws: dict[str, dict[str, int]] = {}  # showtime -> user -> place in the draw (immutable once drawn)
        self._draw_lists: dict[str, list[str]] = {}

    # --- settings (staff) -------------------------------------------------------------------------------------
    def configure(
        self, showtime_id: str, *, on_sale_at: dt.datetime, guarded: bool, rate_per_minute: int, max_shopping: int
    ) -> dict:
        showtime = self._catalog.showtime(showtime_id)
        starts = dt.datetime.fromisoformat(showtime.starts_at.replace("Z", "+00:00"))
        opening = int(on_sale_at.timestamp())
        if opening >= starts.timestamp():
            raise BadRequest("on_sale_at: must be before the showtime starts")
        if not self.repo.configure(
            showtime.id,
            on_sale_at=opening,
            guarded=guarded,
            rate_per_minute=rate_per_minute,
            max_shopping=max_shopping or None,
            active_until=int(starts.timestamp()) + DAY,
        ):
            raise Conflict("on_sale_at: the sale has opened and its draw is done; it cannot move")
        self._forget(showtime.id)
        logger.info("sale configured", extra={"showtime_id": showtime.id, "guarded": guarded})
        return self.dashboard(showtime.id)

    def control(
        self, showtime_id: str, *, paused: bool | None, rate_per_minute: int | None, max_shopping: int | None
    ) -> dict:
        sale = self._require_sale(showtime_id)
        if not self.repo.control(
            sale.showtime_id, paused=paused, rate_per_minute=rate_per_minute, max_shopping=max_shopping
        ):
            raise NotFound("This showtime has no on-sale settings.")
        self._forget(sale.showtime_id)
        logger.info(
            "sale controlled",
            extra={"showtime_id": sale.showtime_id, "paused": paused, "rate_per_minute": rate_per_minute},
        )
        return self.dashboard(sale.showtime_id)

    def dashboard(self, showtime_id: str) -> dict:
        """What operators watch during a sale."""
        sale = self._require_sale(showtime_id, consistent=True, counts=True)
        now = self._clock()
        ended = sale.bought + sale.left + sale.lapsed + sale.vanished
        return {
            **self._settings(sale),
            "opened": now >= sale.on_sale_at,
            "drawn": sale.drawn,
            "counts": {
                "joined": sale.joined,
                "waiting": max(0, sale.joined - sale.admitted - (sale.left - sale.left_admitted) - sale.vanished),
                "admitted": sale.admitted,
                "shopping": sale.shopping,
                "bought": sale.bought,
                "left": sale.left,
                "lapsed": sale.lapsed,
                "vanished": sale.vanished,
                "ended": ended,
            },
            "wait_seconds": {
                "average": round(sale.wait_total / sale.admitted) if sale.admitted else None,
                "longest": sale.wait_max if sale.admitted else None,
            },
            "ticked_at": iso(sale.tick_at),
        }

    def public_sale(self, showtime_id: str) -> dict:
        """What a buyer's page needs to know before showing the seat map."""
        showtime = self._catalog.showtime(showtime_id)
        sale = self._sale(showtime.id)
        if sale is None:
            return {"showtime_id": showtime.id, "on_sale_at": None, "guarded": False, "opened": True, "paused": False}
        return {
            "showtime_id": showtime.id,
            "on_sale_at": iso(sale.on_sale_at),
            "guarded": sale.guarded,
            "opened": self._clock() >= sale.on_sale_at,
            "paused": sale.paused,
        }

    @staticmethod
    def _settings(sale: Sale) -> dict:
        return {
            "showtime_id": sale.showtime_id,
            "on_sale_at": iso(sale.on_sale_at),
            "guarded": sale.guarded,
            "rate_per_minute": sale.rate_per_minute,
            "max_shopping": sale.max_shopping or 0,
            "paused": sale.paused,
        }

    # --- joining and waiting ----------------------------------------------------------------------------------
    def join(self, user_id: str, showtime_id: str) -> dict:
        """A place for this account (the same one when it has a place already; the back of the queue when its
        earlier place ended)."""
        sale = self._guarded_sale(showtime_id)
        now = self._clock()
        existing = self.repo.place(sale.showtime_id, user_id)
        if existing is not None and existing.state not in rules.ENDED:
            return self._status(sale, existing, now)
        if existing is not None:
            # Came back after leaving, lapsing, vanishing or buying: the back of the queue, never the old place.
            if self.repo.requeue(existing, self.repo.next_seq(sale.showtime_id), now):
                self.repo.count(sale.showtime_id, user_id, joined=1)
            return self._status(sale, self.repo.place(sale.showtime_id, user_id) or existing, now)
        before_opening = now < sale.on_sale_at
        place = Place(
            showtime_id=sale.showtime_id,
            user_id=user_id,
            state=rules.WAITING,
            joined_at=now,
            heartbeat_at=now,
            draw=rules.new_draw_number() if before_opening else None,
            seq=None if before_opening else self.repo.next_seq(sale.showtime_id),
        )
        if self.repo.add_place(place, expires_at=sale.on_sale_at + 7 * DAY):
            self.repo.count(sale.showtime_id, user_id, joined=1)
            metrics.add_metric(name="WaitroomJoined", unit="Count", value=1)
        stored = self.repo.place(sale.showtime_id, user_id) or place
        return self._status(sale, stored, now)

    def status(self, user_id: str, showtime_id: str) -> dict:
        """Where the caller's place stands; a poll also tells the room the caller is still there."""
        sale = self._guarded_sale(showtime_id)
        now = self._clock()
        place = self.repo.place(sale.showtime_id, user_id)
        if place is None:
            raise NotFound("You have no place in this queue; join it first.")
        if place.state == rules.WAITING and now - place.heartbeat_at >= self.timings.heartbeat_write_seconds:
            self.repo.heartbeat(sale.showtime_id, user_id, now)
        return self._status(sale, place, now)

    def leave(self, user_id: str, showtime_id: str) -> dict:
        sale = self._guarded_sale(showtime_id)
        place = self.repo.place(sale.showtime_id, user_id)
        if place is None:
            raise NotFound("You have no place in this queue.")
        if place.state in (rules.WAITING, rules.ADMITTED) and self.repo.move(place, rules.LEFT):
            # An admitted person who leaves frees their place for the next one at once (the cap counts it).
            self.repo.count(sale.showtime_id, user_id, left=1, left_admitted=int(place.state == rules.ADMITTED))
        return self._status(sale, self.repo.place(sale.showtime_id, user_id) or place, self._clock())

    def _status(self, sale: Sale, place: Place, now: float) -> dict:
        position, ahead = self._position(sale, place)
        admission = None
        if place.state == rules.ADMITTED and place.admission_id and (place.admission_expires or 0) > now:
            admission = {
                "token": rules.sign_admission(
                    self._secret(),
                    user_id=place.user_id,
                    showtime_id=sale.showtime_id,
                    admission_id=place.admission_id,
                    expires_at=int(place.admission_expires or 0),
                    issuer=self._issuer,
                ),
                "expires_at": iso(place.admission_expires),
            }
        state = place.state
        if state == rules.ADMITTED and admission is None:
            state = rules.LAPSED  # ran out; the ticker records it on its next step
        waiting = state == rules.WAITING
        return {
            "showtime_id": sale.showtime_id,
            "state": state,
            "joined_at": iso(place.joined_at),
            "in_draw": place.draw is not None,
            "drawn": sale.drawn is not None,
            "on_sale_at": iso(sale.on_sale_at),
            "paused": sale.paused,
            "position": position if waiting else None,
            "ahead": ahead if waiting else None,
            "estimated_wait_seconds": (
                rules.estimated_wait(ahead, sale.rate_per_minute, sale.paused)
                if waiting and ahead is not None
                else None
            ),
            "rate_per_minute": sale.rate_per_minute,
            "poll_after_seconds": (
                rules.poll_before_draw(sale.on_sale_at - now)
                if waiting and sale.drawn is None
                else rules.poll_after(ahead if waiting else None, sale.rate_per_minute)
            ),
            "admission": admission,
        }

    def _position(self, sale: Sale, place: Place) -> tuple[int | None, int | None]:
        """(place in the whole queue, people ahead still to be reached); None before the draw for its entrants.
        Counts include people ahead who left or vanished but have not been passed yet: an estimate that only
        improves."""
        if sale.drawn is None:
            return None, None
        if place.draw is not None:
            rank = self._draw_rank(sale, place.user_id)
            if rank is None:
                return None, None
            return rank, max(0, rank - 1 - sale.draw_cursor)
        seq = place.seq or 0
        return sale.drawn + seq, max(0, sale.drawn - sale.draw_cursor) + max(0, seq - 1 - sale.seq_cursor)

    def _draw_rank(self, sale: Sale, user_id: str) -> int | None:
        ranks = self._draws.get(sale.showtime_id)
        if ranks is None:
            order = self._draw_list(sale)
            ranks = {user: number for number, user in enumerate(order, start=1)}
            with self._lock:
                self._draws[sale.showtime_id] = ranks
        return ranks.get(user_id)

    def _draw_list(self, sale: Sale) -> list[str]:
        """The draw's order; read once per container (it never changes once written)."""
        order = self._draw_lists.get(sale.showtime_id)
        if order is None:
            order = []
            for page in range(sale.draw_pages):
                order.extend(self.repo.draw_page(sale.showtime_id, page))
            with self._lock:
                self._draw_lists[sale.showtime_id] = order
        return order

    # --- the seat gate ------------------------------------------------------------------------------------
    def check_select(self, user_id: str, showtime_id: str, token: object) -> None:
        """Refuse a selection before the sale opens, or without a live admission of this user in a guarded
        showtime. One cached read of the settings; in a guarded showtime also one read of the caller's place."""
        sale = self._sale(showtime_id)
        if sale is None:
            return
        now = self._clock()
        if now < sale.on_sale_at:
            raise rules.NotOnSale(f"This showtime goes on sale at {iso(sale.on_sale_at)}.")
        if not sale.guarded:
            return
        admission_id = rules.verify_admission(
            token, self._secret(), user_id=user_id, showtime_id=showtime_id, issuer=self._issuer, now=now
        )
        place = self.repo.place(showtime_id, user_id)
        if place is None or place.admission_id != admission_id:
            raise rules.AdmissionInvalid()  # replaced by a later admission, or never ours
        if place.state != rules.ADMITTED or (place.admission_expires or 0) <= now:
            raise rules.AdmissionLapsed()

    def bought(self, user_id: str, showtime_id: str) -> None:
        """A purchase in a guarded showtime ends its buyer's turn: the place goes to the next person. Never raises:
        the purchase is done whatever happens here."""
        try:
            place = self.repo.place(showtime_id, user_id)
            if place is not None and place.state == rules.ADMITTED and self.repo.move(place, rules.BOUGHT):
                self.repo.count(showtime_id, user_id, bought=1)
        except Exception:  # noqa: BLE001 - a sold order must not be retried over a counter
            logger.exception("waitroom: could not record a purchase", extra={"showtime_id": showtime_id})

    # --- the ticker -----------------------------------------------------------------------------------------
    def run_ticker(self) -> dict:
        """One scheduled invocation: step every active sale now, then again every tick until the loop's time is
        spent (on AWS a schedule fires once a minute; the loop gives admissions a few seconds' grain)."""
        started = self._clock()
        totals = {"sales": 0, "admitted": 0}
        while True:
            active = self.repo.active_sales()
            if not active:
                return totals  # nothing on sale: the invocation costs next to nothing
            for showtime_id in active:
                totals["sales"] += 1
                totals["admitted"] += self.tick(showtime_id)
            if self._clock() - started + self.timings.tick_seconds > self.timings.tick_loop_seconds:
                return totals
            self._sleep(self.timings.tick_seconds)

    def tick(self, showtime_id: str) -> int:
        """One step of one sale: the draw at opening, lapses, then admissions at the rate. Returns admissions."""
        now = self._clock()
        sale = self.repo.sale(showtime_id, consistent=True, counts=True)
        if sale is None or now < sale.on_sale_at:
            return 0
        previous = sale.tick_at
        if not self.repo.claim_tick(showtime_id, now, self.timings.tick_seconds / 2):
            return 0
        if sale.drawn is None:
            if now >= sale.on_sale_at + self.timings.draw_grace_seconds:
                self._draw(sale)
            return 0  # later arrivals wait behind the draw, so nobody is admitted before it
        lapsed = self._lapse(sale, now)
        elapsed = now - max(previous or now, sale.on_sale_at + self.timings.draw_grace_seconds)
        spend = rules.budget(
            allowance=sale.allowance,
            rate_per_minute=sale.rate_per_minute,
            elapsed=elapsed if previous is not None else self.timings.tick_seconds,
            paused=sale.paused,
            max_shopping=sale.max_shopping,
            shopping=max(0, sale.shopping - lapsed),
        )
        walk = self._admit(sale, spend.admit, now)
        saved = self.repo.save_tick(
            showtime_id,
            now,
            {
                "allowance": round(spend.allowance + spend.admit - walk.admitted, 6),
                "draw_cursor": walk.draw_cursor,
                "seq_cursor": walk.seq_cursor,
            },
            {
                "admitted": walk.admitted,
                "vanished": walk.vanished,
                "lapsed": lapsed,
                "wait_total": walk.wait_total,
            },
        )
        if saved and walk.wait_max:
            self.repo.raise_wait_max(showtime_id, walk.wait_max)
        if walk.admitted:
            metrics.add_metric(name="WaitroomAdmitted", unit="Count", value=walk.admitted)
        return walk.admitted

    def _draw(self, sale: Sale) -> None:
        entries = list(self.repo.draw_entries(sale.showtime_id))
        order = rules.draw_order(entries)
        pages = self.repo.write_draw(sale.showtime_id, order)
        if self.repo.finish_draw(sale.showtime_id, len(order), pages):
            logger.info("draw done", extra={"showtime_id": sale.showtime_id, "places": len(order)})
        self._forget(sale.showtime_id)

    def _lapse(self, sale: Sale, now: float) -> int:
        lapsed = 0
        users = self.repo.lapsing(sale.showtime_id, now)
        for place in self.repo.places(sale.showtime_id, users).values():
            if place.state == rules.ADMITTED and (place.admission_expires or 0) <= now:
                lapsed += int(self.repo.move(place, rules.LAPSED))
        return lapsed

    def _admit(self, sale: Sale, admit: int, now: float) -> _Walk:
        """Walk the queue from where the last step stopped: admit live places, pass over ended ones, mark the
        silent as vanished (they hold no place and cost nobody a turn)."""
        walk = _Walk(draw_cursor=sale.draw_cursor, seq_cursor=sale.seq_cursor)
        stale_before = now - self.timings.heartbeat_timeout_seconds
        while walk.admitted < admit:
            candidates = self._candidates(sale, walk, min(100, (admit - walk.admitted) * 2 + 10))
            if not candidates:
                break
            places = self.repo.places(sale.showtime_id, [user for _, user in candidates])
            for seq, user in candidates:
                if walk.admitted >= admit:
                    break
                self._visit(sale, places.get(user), seq, walk, now, stale_before)
                if seq is None:
                    walk.draw_cursor += 1
                else:
                    walk.seq_cursor = seq
        return walk

    def _candidates(self, sale: Sale, walk: _Walk, size: int) -> list[tuple[int | None, str]]:
        """The next places in the queue's order: the draw's, then arrivals after opening (seq None: the draw)."""
        order = self._draw_list(sale)
        if walk.draw_cursor < len(order):
            return [(None, user) for user in order[walk.draw_cursor : walk.draw_cursor + size]]
        return list(self.repo.arrivals_after(sale.showtime_id, walk.seq_cursor, size))

    def _visit(
        self, sale: Sale, place: Place | None, seq: int | None, walk: _Walk, now: float, stale_before: float
    ) -> None:
        if place is None or place.state != rules.WAITING or (seq is not None and place.seq != seq):
            return  # left, bought, or requeued further back: its turn is passed over
        if place.heartbeat_at < stale_before:
            walk.vanished += int(self.repo.vanish(place, stale_before))
        elif self.repo.admit(place, uuid.uuid4().hex, now, int(now) + self.timings.admission_seconds):
            walk.admitted += 1
            waited = int(now - max(place.joined_at, sale.on_sale_at))
            walk.wait_total += waited
            walk.wait_max = max(walk.wait_max, waited)

    # --- caches --------------------------------------------------------------------------------------------
    def _sale(self, showtime_id: str) -> Sale | None:
        cached = self._sales.get(showtime_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.timings.config_cache_seconds:
            return cached[1]
        sale = self.repo.sale(showtime_id) if plausible_id(showtime_id) else None
        with self._lock:
            self._sales[showtime_id] = (now, sale)
        return sale

    def _guarded_sale(self, showtime_id: str) -> Sale:
        sale = self._sale(showtime_id)
        if sale is None or not sale.guarded:
            raise NotFound("This showtime has no waiting room.")
        return sale

    def _require_sale(self, showtime_id: str, consistent: bool = False, counts: bool = False) -> Sale:
        sale = self.repo.sale(showtime_id, consistent=consistent, counts=counts) if plausible_id(showtime_id) else None
        if sale is None:
            raise NotFound("This showtime has no on-sale settings.")
        return sale

    def _forget(self, showtime_id: str) -> None:
        with self._lock:
            self._sales.pop(showtime_id, None)


@dataclass
class _Walk:
    draw_cursor: int
    seq_cursor: int
    admitted: int = 0
    vanished: int = 0
    wait_total: int = 0
    wait_max: int = 0
