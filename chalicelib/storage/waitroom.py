"""Waiting-room items (tables.WAITROOM): every change a conditional write, as the seat locks are.

Keys: `SALE#<showtime>` (settings, the ticker's state, counters), `ENTRY#<showtime>#<user>` (one place per
account: spread over as many partitions as there are people), `DRAW#<showtime>#<page>` (the draw's order, written
once at opening), `SEQ#<showtime>` (the arrival counter after opening), `COUNT#<showtime>#<shard>` (what people did, in
8 shards). docs/waiting-room.md has the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib import waitroom as rules
from chalicelib.storage.conditions import condition_failed
from chalicelib.storage.models import WaitroomItem

DRAW_PAGE = 2000  # user ids per draw page: ~80 KB an item, far under DynamoDB's 400 KB


def sale_key(showtime_id: str) -> str:
    return f"SALE#{showtime_id}"


def entry_key(showtime_id: str, user_id: str) -> str:
    return f"ENTRY#{showtime_id}#{user_id}"


def count_key(showtime_id: str, shard: int) -> str:
    return f"COUNT#{showtime_id}#{shard}"


USER_COUNTERS = ("joined", "left", "left_admitted", "bought")


def draw_key(showtime_id: str, page: int) -> str:
    return f"DRAW#{showtime_id}#{page}"


def _n(value: Any) -> int:
    return int(value) if value is not None else 0


class Sale(NamedTuple):
    showtime_id: str
    on_sale_at: int
    guarded: bool
    rate_per_minute: int
    max_shopping: int | None
    paused: bool
    tick_at: float | None = None
    allowance: float = 0.0
    drawn: int | None = None
    draw_pages: int = 0
    draw_cursor: int = 0
    seq_cursor: int = 0
    joined: int = 0
    admitted: int = 0
    bought: int = 0
    left: int = 0
    left_admitted: int = 0
    lapsed: int = 0
    vanished: int = 0
    wait_total: int = 0
    wait_max: int = 0

    @property
    def shopping(self) -> int:
        """Admitted people who have not yet bought, left or lapsed."""
        return max(0, self.admitted - self.bought - self.left_admitted - self.lapsed)


class Place(NamedTuple):
    showtime_id: str
    user_id: str
    state: str
    joined_at: float
    heartbeat_at: float
    draw: int | None
    seq: int | None
    admitted_at: float | None = None
    admission_id: str | None = None
    admission_expires: int | None = None


def _sale(item: WaitroomItem) -> Sale:
    return Sale(
        showtime_id=item.showtime_id or "",
        on_sale_at=_n(item.on_sale_at),
        guarded=bool(item.guarded),
        rate_per_minute=_n(item.rate_per_minute),
        max_shopping=int(item.max_shopping) if item.max_shopping else None,
        paused=bool(item.paused),
        tick_at=float(item.tick_at) if item.tick_at is not None else None,
        allowance=float(item.allowance or 0),
        drawn=int(item.drawn) if item.drawn is not None else None,
        draw_pages=_n(item.draw_pages),
        draw_cursor=_n(item.draw_cursor),
        seq_cursor=_n(item.seq_cursor),
        joined=_n(item.joined),
        admitted=_n(item.admitted),
        bought=_n(item.bought),
        left=_n(item.left),
        left_admitted=_n(item.left_admitted),
        lapsed=_n(item.lapsed),
        vanished=_n(item.vanished),
        wait_total=_n(item.wait_total),
        wait_max=_n(item.wait_max),
    )


def _place(item: WaitroomItem) -> Place:
    return Place(
        showtime_id=item.showtime_id or "",
        user_id=item.user_id or "",
        state=item.state or rules.WAITING,
        joined_at=float(item.joined_at or 0),
        heartbeat_at=float(item.heartbeat_at or 0),
        draw=int(item.draw) if item.draw is not None else None,
        seq=int(item.seq) if item.seq is not None else None,
        admitted_at=float(item.admitted_at) if item.admitted_at is not None else None,
        admission_id=item.admission_id,
        admission_expires=int(item.admission_expires) if item.admission_expires is not None else None,
    )


class WaitroomRepository:
    """Raises pynamodb's errors except where a method says it reads a failed condition."""

    def _client(self) -> Any:
        return WaitroomItem._get_connection().connection.client

    @property
    def _table(self) -> str:
        return WaitroomItem.Meta.table_name

    # --- sales --------------------------------------------------------------------------
    def sale(self, showtime_id: str, *, consistent: bool = False, counts: bool = False) -> Sale | None:
        """A sale's settings and the ticker's state; with `counts`, also what its people did (joined, left,
        bought), summed over the counter shards (one BatchGetItem)."""
        try:
            sale = _sale(WaitroomItem.get(sale_key(showtime_id), consistent_read=consistent))
        except WaitroomItem.DoesNotExist:
            return None
        if not counts:
            return sale
        totals = dict.fromkeys(USER_COUNTERS, 0)
        keys = [count_key(showtime_id, shard) for shard in range(rules.DRAW_SHARDS)]
        for item in WaitroomItem.batch_get(keys, consistent_read=consistent):
            for name in USER_COUNTERS:
                totals[name] += _n(getattr(item, name))
        return sale._replace(
            joined=totals["joined"],
            left=totals["left"],
            left_admitted=totals["left_admitted"],
            bought=totals["bought"],
        )

    def configure(
        self,
        showtime_id: str,
        *,
        on_sale_at: int,
        guarded: bool,
        rate_per_minute: int,
        max_shopping: int | None,
        active_until: int,
    ) -> bool:
        """Set a sale's settings; its state and counters are kept. False when it would move `on_sale_at` after the
        draw (which is done once, at the opening it had)."""
        item = WaitroomItem(sale_key(showtime_id))
        actions: list[Action] = [
            WaitroomItem.showtime_id.set(showtime_id),
            WaitroomItem.on_sale_at.set(on_sale_at),
            WaitroomItem.guarded.set(guarded),
            WaitroomItem.rate_per_minute.set(rate_per_minute),
            WaitroomItem.max_shopping.set(max_shopping or 0),
            WaitroomItem.paused.set(WaitroomItem.paused | False),
            WaitroomItem.active.set("1"),
            WaitroomItem.expires_at.set(active_until),
        ]
        condition = WaitroomItem.drawn.does_not_exist() | (WaitroomItem.on_sale_at == on_sale_at)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def control(
        self, showtime_id: str, *, paused: bool | None, rate_per_minute: int | None, max_shopping: int | None
    ) -> bool:
        """Pause, resume, or change the rate or the cap of a sale; false when it has no settings."""
        actions: list[Action] = [WaitroomItem.showtime_id.set(showtime_id)]
        if paused is not None:
            actions.append(WaitroomItem.paused.set(paused))
        if rate_per_minute is not None:
            actions.append(WaitroomItem.rate_per_minute.set(rate_per_minute))
        if max_shopping is not None:
            actions.append(WaitroomItem.max_shopping.set(max_shopping))
        try:
            WaitroomItem(sale_key(showtime_id)).update(actions=actions, condition=WaitroomItem.pk.exists())
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def active_sales(self) -> list[str]:
        return [item.pk.removeprefix("SALE#") for item in WaitroomItem.by_active.query("1")]

    def count(self, showtime_id: str, user_id: str, **deltas: int) -> None:
        """ADD to what people did (joined, left, left_admitted, bought): one write on one of the sale's counter
        shards (by user), so a joining crowd does not queue on one item."""
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values = {f":v{i}": {"N": str(value)} for i, value in enumerate(deltas.values())}
        adds = ", ".join(f"{alias} :v{i}" for i, alias in enumerate(names))
        self._client().update_item(
            TableName=self._table,
            Key={"pk": {"S": count_key(showtime_id, rules.draw_shard(user_id))}},
            UpdateExpression=f"ADD {adds}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # --- the ticker's state -----------------------------------------------------------------
    def claim_tick(self, showtime_id: str, now: float, min_gap: float) -> bool:
        """Take this tick of a sale: true for one caller per `min_gap` seconds, so two tickers never walk the queue
        at once."""
        try:
            WaitroomItem(sale_key(showtime_id)).update(
                actions=[WaitroomItem.tick_at.set(now)],
                condition=WaitroomItem.pk.exists()
                & (WaitroomItem.tick_at.does_not_exist() | (WaitroomItem.tick_at <= now - min_gap)),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def save_tick(self, showtime_id: str, now: float, state: dict[str, Any], adds: dict[str, int]) -> bool:
        """Record a tick's outcome, if this ticker still owns the tick (`tick_at` is ours)."""
        names = {f"#s{i}": name for i, name in enumerate(state)}
        values: dict[str, Any] = {f":s{i}": {"N": str(value)} for i, value in enumerate(state.values())}
        sets = ", ".join(f"{alias} = :s{i}" for i, alias in enumerate(names))
        expression = f"SET {sets}"
        adds = {name: value for name, value in adds.items() if value}
        if adds:
            names.update({f"#a{i}": name for i, name in enumerate(adds)})
            values.update({f":a{i}": {"N": str(value)} for i, value in enumerate(adds.values())})
            expression += " ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
        values[":now"] = {"N": str(now)}
        try:
            self._client().update_item(
                TableName=self._table,
                Key={"pk": {"S": sale_key(showtime_id)}},
                UpdateExpression=expression,
                ConditionExpression="tick_at = :now",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._client().exceptions.ConditionalCheckFailedException:
            return False
        return True

    def raise_wait_max(self, showtime_id: str, wait: int) -> None:
        try:
            WaitroomItem(sale_key(showtime_id)).update(
                actions=[WaitroomItem.wait_max.set(wait)],
                condition=WaitroomItem.wait_max.does_not_exist() | (WaitroomItem.wait_max < wait),
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise

    # --- places ---------------------------------------------------------------------------
    def place(self, showtime_id: str, user_id: str) -> Place | None:
        try:
            return _place(WaitroomItem.get(entry_key(showtime_id, user_id), consistent_read=True))
        except WaitroomItem.DoesNotExist:
            return None

    def places(self, showtime_id: str, user_ids: list[str]) -> dict[str, Place]:
        """Many places at once (BatchGetItem, strongly consistent)."""
        keys = [entry_key(showtime_id, user_id) for user_id in user_ids]
        return {item.user_id: _place(item) for item in WaitroomItem.batch_get(keys, consistent_read=True)}

    def add_place(self, place: Place, expires_at: int) -> bool:
        """Write a new place; false when the account already has one here (the first one stands)."""
        item = WaitroomItem(
            entry_key(place.showtime_id, place.user_id),
            showtime_id=place.showtime_id,
            user_id=place.user_id,
            state=rules.WAITING,
            joined_at=place.joined_at,
            heartbeat_at=place.heartbeat_at,
            expires_at=expires_at,
        )
        if place.draw is not None:
            item.draw = place.draw
            item.draw_pk = f"{place.showtime_id}#{rules.draw_shard(place.user_id)}"
        if place.seq is not None:
            item.seq = place.seq
            item.arrival_pk = place.showtime_id
        try:
            item.save(condition=WaitroomItem.pk.does_not_exist())
        except PutError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def requeue(self, place: Place, seq: int, now: float) -> bool:
        """Put a place that ended (left, lapsed, vanished, bought) at the back of the queue, if it is still as read."""
        try:
            actions: list[Action] = [
                WaitroomItem.state.set(rules.WAITING),
                WaitroomItem.seq.set(seq),
                WaitroomItem.arrival_pk.set(place.showtime_id),
                WaitroomItem.joined_at.set(now),
                WaitroomItem.heartbeat_at.set(now),
                WaitroomItem.draw.remove(),
                WaitroomItem.draw_pk.remove(),
                WaitroomItem.admission_id.remove(),
                WaitroomItem.admission_expires.remove(),
                WaitroomItem.admitted_at.remove(),
                WaitroomItem.lapse_pk.remove(),
            ]
            WaitroomItem(entry_key(place.showtime_id, place.user_id)).update(
                actions=actions, condition=WaitroomItem.state == place.state
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def next_seq(self, showtime_id: str) -> int:
        """The next arrival number after opening (one ADD on the showtime's counter item)."""
        answer = self._client().update_item(
            TableName=self._table,
            Key={"pk": {"S": f"SEQ#{showtime_id}"}},
            UpdateExpression="ADD #c :one",
            ExpressionAttributeNames={"#c": "counter"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["counter"]["N"])

    def heartbeat(self, showtime_id: str, user_id: str, now: float) -> None:
        try:
            WaitroomItem(entry_key(showtime_id, user_id)).update(
                actions=[WaitroomItem.heartbeat_at.set(now)], condition=WaitroomItem.state == rules.WAITING
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise

    def move(self, place: Place, to: str, *, extra: list | None = None, condition: Any = None) -> bool:
        """Move a place from the state it was read in to `to`; false if it had moved meanwhile."""
        actions: list[Action] = [WaitroomItem.state.set(to), *(extra or [])]
        if to != rules.ADMITTED:
            actions.append(WaitroomItem.lapse_pk.remove())
        guard = WaitroomItem.state == place.state
        if condition is not None:
            guard = guard & condition
        try:
            WaitroomItem(entry_key(place.showtime_id, place.user_id)).update(actions=actions, condition=guard)
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def admit(self, place: Place, admission_id: str, now: float, expires: int) -> bool:
        return self.move(
            place,
            rules.ADMITTED,
            extra=[
                WaitroomItem.admission_id.set(admission_id),
                WaitroomItem.admitted_at.set(now),
                WaitroomItem.admission_expires.set(expires),
                WaitroomItem.lapse_pk.set(place.showtime_id),
            ],
        )

    def vanish(self, place: Place, stale_before: float) -> bool:
        return self.move(place, rules.VANISHED, condition=WaitroomItem.heartbeat_at < stale_before)

    # --- the draw and the arrivals -------------------------------------------------------------
    def draw_entries(self, showtime_id: str) -> Iterator[tuple[int, str]]:
        """Every pre-opening place: (draw number, user id), shard by shard."""
        prefix = f"ENTRY#{showtime_id}#"
        for shard in range(rules.DRAW_SHARDS):
            for item in WaitroomItem.by_draw.query(f"{showtime_id}#{shard}"):
                yield int(item.draw), item.pk.removeprefix(prefix)

    def write_draw(self, showtime_id: str, order: list[str]) -> int:
        """Write the draw's order in pages; returns the number of pages."""
        pages = [order[i : i + DRAW_PAGE] for i in range(0, len(order), DRAW_PAGE)]
        with WaitroomItem.batch_write() as batch:
            for number, users in enumerate(pages):
                batch.save(WaitroomItem(draw_key(showtime_id, number), showtime_id=showtime_id, users=users))
        return len(pages)

    def finish_draw(self, showtime_id: str, drawn: int, pages: int) -> bool:
        """Record the draw once; false if another ticker recorded it first."""
        try:
            WaitroomItem(sale_key(showtime_id)).update(
                actions=[
                    WaitroomItem.drawn.set(drawn),
                    WaitroomItem.draw_pages.set(pages),
                    WaitroomItem.draw_cursor.set(0),
                ],
                condition=WaitroomItem.drawn.does_not_exist(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def draw_page(self, showtime_id: str, page: int) -> list[str]:
        try:
            return list(WaitroomItem.get(draw_key(showtime_id, page)).users or [])
        except WaitroomItem.DoesNotExist:
            return []

    def arrivals_after(self, showtime_id: str, seq: int, limit: int) -> list[tuple[int, str]]:
        """(seq, user id) of places that arrived after opening, from `seq` on, in arrival order."""
        prefix = f"ENTRY#{showtime_id}#"
        items = WaitroomItem.by_arrival.query(showtime_id, range_key_condition=WaitroomItem.seq > seq, limit=limit)
        return [(int(item.seq), item.pk.removeprefix(prefix)) for item in items]

    def lapsing(self, showtime_id: str, now: float, limit: int = 100) -> list[str]:
        """Users whose admission ran out unused."""
        prefix = f"ENTRY#{showtime_id}#"
        items = WaitroomItem.by_lapse.query(
            showtime_id, range_key_condition=WaitroomItem.admission_expires <= int(now), limit=limit
        )
        return [item.pk.removeprefix(prefix) for item in items]
