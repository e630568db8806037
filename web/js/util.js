// Small DOM and formatting helpers. Everything is built with DOM calls (never innerHTML with data), so text
// from the server can never become markup.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') {
      // CSSOM rather than a style attribute, so a strict Content-Security-Policy does not block it.
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, String(v));
    }
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Like Element.append, but flattens arrays and skips null / undefined / false. */
export function append(parent, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  return append(clear(el), ...children);
}

/** "12.00" + "USD" -> "12.00 USD": amounts stay the server's decimal strings, never floats. */
export function money(amount, currency) {
  if (amount === undefined || amount === null || amount === '') return '';
  return currency ? `${amount} ${currency}` : String(amount);
}

export function parseTime(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

export function formatDateTime(iso) {
  const ms = parseTime(iso);
  if (ms === null) return iso || '';
  return new Date(ms).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  });
}

export function formatTime(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export function formatDate(isoDate) {
  // A bare YYYY-MM-DD is a calendar date: read it as local, not as UTC midnight.
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate || '');
  if (!m) return isoDate || '';
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])).toLocaleDateString(undefined, {
    weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
  });
}

/** Milliseconds -> "m:ss" (or "h:mm:ss"), never negative. */
export function countdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

/** Natural order for row labels: "A" < "B" < "AA", "2" < "10". */
export const naturalCompare = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' }).compare;

export function seatName(ticket) {
  if (ticket.row !== undefined && ticket.row !== null && ticket.number !== undefined && ticket.number !== null) {
    return `Row ${ticket.row} seat ${ticket.number}`;
  }
  // Order listings may carry only the seat label ("C7"): read it as row letters + seat number.
  const m = /^([A-Za-z]+)-?(\d+)$/.exec(String(ticket.seat ?? ''));
  if (m) return `Row ${m[1]} seat ${m[2]}`;
  return ticket.seat ? `Seat ${ticket.seat}` : `Ticket ${ticket.ticket_id}`;
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason ?? new DOMException('Aborted', 'AbortError'));
    }, { once: true });
  });
}

export function isAbort(err) {
  return err?.name === 'AbortError';
}
