// The hall: one <button> per seat, laid out by row and number, kept in sync with REST listings, WebSocket
// snapshots and ticket_status updates. A held seat whose expiry has passed is shown free at once.

import { h, clear, countdown, money, naturalCompare, parseTime, seatName, append } from './util.js';

const STATE_WORDS = {
  available: 'available',
  held: 'held by another customer',
  mine: 'held by you',
  sold: 'sold',
  soldMine: 'bought by you',
};

export class SeatMap {
  /**
   * @param {HTMLElement} container  where the hall is drawn
   * @param {object} opts
   *   label: accessible name of the hall; onActivate(ticket, view): a seat was clicked / pressed;
   *   onMineExpired(ticket): one of my holds ran out; onUnknownTicket(id): an update named a seat we lack.
   */
  constructor(container, { label, onActivate, onMineExpired, onUnknownTicket }) {
    this.container = container;
    this.label = label;
    this.onActivate = onActivate;
    this.onMineExpired = onMineExpired || (() => {});
    this.onUnknownTicket = onUnknownTicket || (() => {});
    this.tickets = new Map(); // ticket_id -> ticket model
    this.buttons = new Map(); // ticket_id -> button
    this.pending = new Set();
    this.grid = null;
    // Counts the live changes applied (acks and ticket_status updates); each ticket remembers the count at
    // its last one, so a listing requested before that change cannot undo it (see load()).
    this.version = 0;
  }

  // ---- state ------------------------------------------------------------------------------------------------

  /** What a viewer should see now: available | held | mine | sold. */
  view(t, now = Date.now()) {
    if (t.status === 'sold') return 'sold';
    if (t.status === 'held') {
      if (t.expiresAt !== null && t.expiresAt <= now) return 'available';
      return t.mine ? 'mine' : 'held';
    }
    return 'available';
  }

  /**
   * Replaces the whole state (REST listing or WebSocket snapshot). `since`: the `version` when the listing
   * was requested. A seat changed by a live message after that keeps its newer state: the server answers
   * each message on its own, so a snapshot read just before my select committed can arrive after the
   * `selected` ack (and the broadcast), and would otherwise show my seat as somebody else's or free.
   * Later changes still arrive as ticket_status updates, in order, so the map converges.
   */
  load(list, since = null) {
    const incoming = new Map();
    for (const raw of list || []) {
      if (!raw || raw.ticket_id === undefined) continue;
      const id = String(raw.ticket_id);
      const old = this.tickets.get(id);
      const newer = since !== null && old !== undefined && old.changed > since;
      const listed = ['available', 'held', 'sold'].includes(raw.status) ? raw.status : 'available';
      const listedExpiry = parseTime(raw.expires_at ?? raw.hold_expires_at);
      const status = newer ? old.status : listed;
      // Updates never name the holder: when the listing shows the very state we kept, its `mine` is the better one.
      const sameState = newer && listed === old.status && listedExpiry === old.expiresAt;
      const mine = newer && !sameState ? old.mine : Boolean(raw.mine);
      let expiresAt = newer ? old.expiresAt : listedExpiry;
      // Listings may omit a hold's expiry: keep the one we learned from `selected` / ticket_status.
      if (expiresAt === null && old && old.status === status && old.mine === mine) expiresAt = old.expiresAt;
      incoming.set(id, {
        id,
        row: raw.row,
        number: raw.number,
        seat: raw.seat,
        price: raw.price,
        currency: raw.currency,
        status,
        mine,
        expiresAt: status === 'held' ? expiresAt : null,
        changed: newer ? old.changed : 0,
        shown: null,
      });
    }
    const sameSeats = incoming.size === this.tickets.size && [...incoming.keys()].every((id) => this.tickets.has(id));
    this.tickets = incoming;
    if (!sameSeats || !this.grid) this.build();
    else for (const t of this.tickets.values()) this.render(t);
  }

  /** Applies ticket_status updates (idempotent, in order). Returns the tickets that changed. */
  applyUpdates(updates) {
    const now = Date.now();
    const changed = [];
    for (const u of updates || []) {
      const t = this.tickets.get(String(u?.ticket_id));
      if (!t) {
        if (u?.ticket_id !== undefined) this.onUnknownTicket(String(u.ticket_id));
        continue;
      }
      const expiresAt = parseTime(u.expires_at);
      if (u.status === 'available') {
        t.status = 'available';
        t.mine = false;
        t.expiresAt = null;
      } else if (u.status === 'held') {
        const stillMine = t.mine && t.status === 'held' && (t.expiresAt === null || t.expiresAt > now);
        // A hold is never extended, so a new expiry on a live hold of mine means checkout; on anything else it
        // is somebody else's hold (the update never names the holder).
        t.mine = stillMine;
        t.status = 'held';
        t.expiresAt = expiresAt ?? (stillMine ? t.expiresAt : null);
      } else if (u.status === 'sold') {
        t.status = 'sold';
        t.mine = t.mine && (t.expiresAt === null || t.expiresAt > now || this.pending.has(t.id));
        t.expiresAt = null;
      } else {
        continue;
      }
      t.changed = ++this.version;
      this.render(t);
      changed.push(t);
    }
    return changed;
  }

  /** The server confirmed my hold (`selected`). */
  markMine(id, expiresAtIso) {
    const t = this.tickets.get(String(id));
    if (!t) return null;
    t.status = 'held';
    t.mine = true;
    t.expiresAt = parseTime(expiresAtIso) ?? t.expiresAt;
    t.changed = ++this.version;
    this.setPending(t.id, false);
    this.render(t);
    return t;
  }

  /** The server confirmed the release (`unselected`). */
  unmarkMine(id) {
    const t = this.tickets.get(String(id));
    if (!t) return null;
    if (t.status === 'held' && t.mine) {
      t.status = 'available';
      t.expiresAt = null;
    }
    t.mine = false;
    t.changed = ++this.version;
    this.setPending(t.id, false);
    this.render(t);
    return t;
  }

  setPending(id, on) {
    const key = String(id);
    if (on) this.pending.add(key);
    else this.pending.delete(key);
    const button = this.buttons.get(key);
    if (button) {
      if (on) button.setAttribute('aria-busy', 'true');
      else button.removeAttribute('aria-busy');
    }
  }

  isPending(id) {
    return this.pending.has(String(id));
  }

  get(id) {
    return this.tickets.get(String(id)) || null;
  }

  /** My live holds, earliest expiry first. */
  mine(now = Date.now()) {
    return [...this.tickets.values()]
      .filter((t) => this.view(t, now) === 'mine')
      .sort((a, b) => (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity));
  }

  /** Once a second: countdowns on my holds, and held seats turning free when their expiry passes. */
  tick(now = Date.now()) {
    for (const t of this.tickets.values()) {
      if (t.status !== 'held') continue;
      const before = t.shown;
      this.render(t, now);
      if (before === 'mine' && t.shown === 'available') this.onMineExpired(t);
    }
  }

  // ---- drawing ----------------------------------------------------------------------------------------------

  build() {
    clear(this.container);
    this.buttons.clear();
    const rows = new Map();
    for (const t of this.tickets.values()) {
      const key = String(t.row ?? '');
      if (!rows.has(key)) rows.set(key, []);
      rows.get(key).push(t);
    }
    const rowKeys = [...rows.keys()].sort(naturalCompare);
    for (const list of rows.values()) {
      list.sort((a, b) => naturalCompare(String(a.number ?? a.seat ?? ''), String(b.number ?? b.seat ?? '')));
    }
    const columnOf = seatColumns([...this.tickets.values()]);
    let maxColumns = 1;
    for (const list of rows.values()) maxColumns = Math.max(maxColumns, ...list.map((t, i) => columnOf(t, i)));
    this.grid = h('div', {
      class: 'hall',
      role: 'group',
      'aria-label': this.label,
      style: { '--columns': maxColumns },
      onKeydown: (event) => this.onKeydown(event),
      onClick: (event) => {
        const button = event.target.closest('button[data-ticket-id]');
        if (button) this.activate(button.dataset.ticketId);
      },
    });
    for (const rowKey of rowKeys) {
      const seats = rows.get(rowKey);
      const rowEl = h('div', { class: 'hall-row', role: 'group', 'aria-label': rowKey ? `Row ${rowKey}` : 'Seats' },
        h('span', { class: 'row-label', 'aria-hidden': 'true', style: { 'grid-column': 1 } }, rowKey),
        seats.map((t, i) => {
          const button = h('button', {
            type: 'button',
            class: 'seat',
            'data-ticket-id': t.id,
            'data-row': rowKey,
            style: { 'grid-column': columnOf(t, i) + 1 },
          },
          h('span', { class: 'seat-num', 'aria-hidden': 'true' }, t.number ?? t.seat ?? ''),
          h('span', { class: 'seat-mark', 'aria-hidden': 'true' }),
          h('span', { class: 'seat-timer', 'aria-hidden': 'true' }));  // text drawn by CSS from data-timer
          this.buttons.set(t.id, button);
          return button;
        }),
        h('span', { class: 'row-label row-label-end', 'aria-hidden': 'true', style: { 'grid-column': maxColumns + 2 } }, rowKey));
      append(this.grid, rowEl);
    }
    if (!this.tickets.size) {
      append(this.grid, h('p', { class: 'hall-empty' }, 'No seats are listed for this showtime.'));
    }
    append(this.container, this.grid);
    for (const t of this.tickets.values()) this.render(t);
  }

  render(t, now = Date.now()) {
    const button = this.buttons.get(t.id);
    const shown = this.view(t, now);
    const stateKey = shown === 'sold' && t.mine ? 'soldMine' : shown;
    if (button) {
      const mineShown = String(t.mine && shown !== 'available');
      if (t.shown !== shown || button.dataset.mine !== mineShown) {
        button.dataset.status = shown;
        button.dataset.mine = mineShown;
        button.setAttribute('aria-pressed', String(shown === 'mine'));
        if (shown === 'held' || shown === 'sold') button.setAttribute('aria-disabled', 'true');
        else button.removeAttribute('aria-disabled');
        const price = money(t.price, t.currency);
        button.setAttribute('aria-label', `${seatName(t)}, ${STATE_WORDS[stateKey]}${price ? `, ${price}` : ''}`);
        button.title = `${seatName(t)}: ${STATE_WORDS[stateKey]}${price ? ` (${price})` : ''}`;
      }
      // The countdown is drawn from an attribute by CSS, so it stays out of the button's accessible name (the
      // name would otherwise change every second); the cart says the same in text.
      const timer = button.querySelector('.seat-timer');
      const text = shown === 'mine' && t.expiresAt !== null ? countdown(t.expiresAt - now) : '';
      if ((timer.dataset.timer || '') !== text) {
        if (text) timer.dataset.timer = text;
        else delete timer.dataset.timer;
      }
    }
    t.shown = shown;
  }

  activate(id) {
    const t = this.tickets.get(String(id));
    if (t) this.onActivate(t, this.view(t));
  }

  // ---- keyboard: arrows move within the hall, Home/End within a row ----------------------------------------

  onKeydown(event) {
    const button = event.target.closest?.('button[data-ticket-id]');
    if (!button || event.altKey || event.ctrlKey || event.metaKey) return;
    const rowEl = button.parentElement;
    const seats = [...rowEl.querySelectorAll('button[data-ticket-id]')];
    const index = seats.indexOf(button);
    let target = null;
    switch (event.key) {
      case 'ArrowLeft': target = seats[index - 1]; break;
      case 'ArrowRight': target = seats[index + 1]; break;
      case 'Home': target = seats[0]; break;
      case 'End': target = seats[seats.length - 1]; break;
      case 'ArrowUp':
      case 'ArrowDown': {
        const sibling = event.key === 'ArrowUp' ? rowEl.previousElementSibling : rowEl.nextElementSibling;
        if (sibling) target = nearestSeat(sibling, button);
        break;
      }
      default: return;
    }
    event.preventDefault();
    if (target) {
      target.focus();
      target.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
  }
}

/** Seat -> 1-based column. Numbered seats line up across rows (gaps stay gaps); otherwise by order. */
function seatColumns(tickets) {
  const numbers = tickets.map((t) => Number(t.number));
  const numeric = numbers.length > 0 && numbers.every((n) => Number.isInteger(n));
  const min = numeric ? Math.min(...numbers) : 0;
  const max = numeric ? Math.max(...numbers) : 0;
  if (!numeric || max - min > 200) return (t, index) => index + 1;
  return (t) => Number(t.number) - min + 1;
}

function nearestSeat(rowEl, from) {
  const x = from.getBoundingClientRect().left;
  let best = null;
  let bestDistance = Infinity;
  for (const seat of rowEl.querySelectorAll('button[data-ticket-id]')) {
    const distance = Math.abs(seat.getBoundingClientRect().left - x);
    if (distance < bestDistance) {
      best = seat;
      bestDistance = distance;
    }
  }
  return best;
}
