// Staff pages: events and showtimes (create, edit), a showtime's occupancy and revenue live. Finding and refunding
// orders is in staffOrders.js. Every page checks the staff role first; the API checks it again (403 otherwise).

import { api, liveUrl, session } from '../api.js';
import { LiveConnection } from '../live.js';
import { append, fill, formatDate, formatDateTime, formatTime, h, isAbort, money, parseTime } from '../util.js';
import { errorNotice, heading, loading, loginPrompt, notice, pagedList } from '../ui.js';
import { saleSection } from './staffSale.js';

// A showtime page refetches its report at most this often while the room is busy (each fetch reads the hall once).
const REPORT_MIN_GAP_MS = 1_000;
// And this often when the room is quiet, in case a change came while the socket was down.
const REPORT_IDLE_MS = 30_000;

/** True for a staff user; otherwise says why the page is not shown (log in, or staff only) and returns false. */
export function staffGate(ctx, title, here) {
  ctx.setTitle(title);
  if (!session.loggedIn) {
    append(ctx.main, heading(title), loginPrompt('Log in with a staff account to manage the cinema.', here));
    return false;
  }
  if (!session.isStaff) {
    append(ctx.main, heading(title), errorNotice({ message: 'This page is for cinema staff only.', code: 'forbidden' }),
      h('p', {}, h('a', { href: '#/events' }, 'See the events')));
    return false;
  }
  return true;
}

export function staffNav(current) {
  const link = (href, text, key) => h('li', {}, h('a', { href, 'aria-current': current === key ? 'page' : null }, text));
  return h('nav', { class: 'staff-nav', 'aria-label': 'Staff' },
    h('ul', {}, link('#/staff', 'Events and showtimes', 'events'), link('#/staff/orders', 'Find an order', 'orders'),
      link('#/staff/checkin', 'Door check-in', 'checkin')));
}

// ---- forms --------------------------------------------------------------------------------------------------

let fieldCounter = 0;

/** A labelled form field; `hint` is tied to the input with aria-describedby. */
export function field(label, input, hint) {
  fieldCounter += 1;
  input.id ||= `f${fieldCounter}-${input.name}`;
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

/**
 * Sends a form: disables it while the request runs, shows the server's error in the form's alert and marks the
 * field it names ("title: ..." -> the input named title) invalid and focused.
 */
export async function submitForm(form, error, send) {
  const submit = form.querySelector('button[type="submit"]');
  error.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  submit.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await send();
  } catch (err) {
    if (isAbort(err)) return undefined;
    error.textContent = err.message;
    const name = /^([a-z_]+)[.:]/.exec(err.message || '')?.[1];
    const input = name ? form.elements.namedItem(name) : null;
    if (input instanceof HTMLElement) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
    return undefined;
  } finally {
    submit.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

let categoriesCache = null;

async function categories(signal) {
  categoriesCache ??= (await api.categories({ signal })).results || [];
  return categoriesCache;
}

/** The event form, for a new event or (with `event`) an edit; `onSaved(event)` after the server accepted it. */
function eventForm(cats, event, onSaved, signal) {
  const title = h('input', { name: 'title', type: 'text', required: true, maxlength: '200', value: event?.title ?? '' });
  const category = h('select', { name: 'category', required: true },
    cats.map((c) => h('option', { value: c.slug, selected: event?.category?.slug === c.slug }, c.name)));
  const duration = h('input', {
    name: 'duration_minutes', type: 'number', required: true, min: '1', max: '1440', step: '1', inputmode: 'numeric',
    value: event?.duration_minutes ?? '',
  });
  const description = h('textarea', { name: 'description', rows: '4', maxlength: '5000' });
  description.value = event?.description ?? '';
  const error = h('p', { class: 'form-error', role: 'alert' });
  const saved = h('p', { class: 'form-saved', role: 'status' });
  const form = h('form', { class: 'staff-form', 'data-form': event ? 'edit-event' : 'new-event' },
    field('Title', title),
    field('Category', category),
    field('Length in minutes', duration, '1 to 1440.'),
    field('Description', description, 'Optional. Shown on the event page.'),
    error,
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, event ? 'Save changes' : 'Create event')),
    saved);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    saved.textContent = '';
    const body = {
      title: title.value.trim(),
      category: category.value,
      duration_minutes: Number.parseInt(duration.value, 10),
      description: description.value,
    };
    const result = await submitForm(form, error, () => (event
      ? api.updateEvent(event.id, body, { signal })
      : api.createEvent(body, { signal })));
    if (result) onSaved(result, saved);
  });
  return form;
}

// ---- #/staff: events ----------------------------------------------------------------------------------------

export async function viewStaffHome(ctx) {
  if (!staffGate(ctx, 'Staff: events', '#/staff')) return;
  const list = h('ul', { class: 'staff-list', 'aria-busy': 'true' });
  const status = h('p', { class: 'list-status', role: 'status' });
  const more = h('button', { type: 'button', class: 'secondary load-more', hidden: true }, 'Load more events');
  const formSlot = h('div', {}, loading('Loading categories…'));
  append(ctx.main, heading('Staff: events'), staffNav('events'),
    h('section', { 'aria-labelledby': 'new-event-heading' }, h('h2', { id: 'new-event-heading' }, 'New event'), formSlot),
    h('section', { 'aria-labelledby': 'events-heading' }, h('h2', { id: 'events-heading' }, 'Events'), list, status, more));
  try {
    const cats = await categories(ctx.signal);
    fill(formSlot, eventForm(cats, null, (created) => ctx.navigate(`#/staff/events/${encodeURIComponent(created.id)}?created=1`), ctx.signal));
  } catch (err) {
    if (isAbort(err)) return;
    fill(formSlot, errorNotice(err));
  }
  await pagedList({
    list,
    status,
    more,
    fetchPage: (cursor) => api.events({ cursor, limit: 50 }, { signal: ctx.signal }),
    render: (event) => h('li', { 'data-event-id': event.id },
      h('a', { href: `#/staff/events/${encodeURIComponent(event.id)}` }, event.title),
      event.category?.name ? h('span', { class: 'tag' }, event.category.name) : null),
    loadingText: 'Loading events…',
    summary: (count, hasMore) => (count ? `${count} event${count === 1 ? '' : 's'}${hasMore ? '' : ', all loaded'}.` : 'No events yet.'),
  });
}

// ---- #/staff/events/<id>: edit an event, its showtimes, a new showtime -----------------------------------------

export async function viewStaffEvent(ctx, params, query) {
  const eventId = params[0];
  const here = `#/staff/events/${encodeURIComponent(eventId)}`;
  if (!staffGate(ctx, 'Staff: event', here)) return;
  append(ctx.main, loading('Loading event…'));
  let event;
  let cats;
  try {
    [event, cats] = await Promise.all([api.event(eventId, { signal: ctx.signal }), categories(ctx.signal)]);
  } catch (err) {
    if (isAbort(err)) return;
    fill(ctx.main, heading('Staff: event'), staffNav(null), errorNotice(err));
    return;
  }
  ctx.setTitle(`Staff: ${event.title}`);
  const title = heading(event.title);
  const created = query.get('created') ? notice(`Event “${event.title}” created. Add its showtimes below.`, 'success') : null;
  const editForm = eventForm(cats, event, (saved, status) => {
    event = { ...event, ...saved };
    title.textContent = saved.title;
    ctx.setTitle(`Staff: ${saved.title}`);
    status.textContent = 'Saved.';
  }, ctx.signal);

  fill(ctx.main,
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/staff' }, '← Staff: events')),
    title,
    staffNav(null),
    created,
    h('p', {}, h('a', { href: `#/events/${encodeURIComponent(event.id)}` }, 'See the page buyers see')),
    h('section', { 'aria-labelledby': 'showtimes-heading' },
      h('h2', { id: 'showtimes-heading' }, 'Showtimes'),
      showtimeTable(event)),
    h('section', { 'aria-labelledby': 'new-showtime-heading' },
      h('h2', { id: 'new-showtime-heading' }, 'New showtime'),
      showtimeForm(event, ctx)),
    h('section', { 'aria-labelledby': 'edit-event-heading' },
      h('h2', { id: 'edit-event-heading' }, 'Edit event'),
      editForm));
}

function showtimeTable(event) {
  const showtimes = [...(event.showtimes || [])];
  if (!showtimes.length) return notice('No showtimes yet.');
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'staff-table' },
      h('caption', { class: 'visually-hidden' }, `Showtimes of ${event.title}`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Starts'), h('th', { scope: 'col' }, 'Theater'),
        h('th', { scope: 'col' }, 'Free seats'), h('th', { scope: 'col' }, 'Sales'))),
      h('tbody', {}, showtimes.map((s) => h('tr', { 'data-showtime-id': s.showtime_id },
        h('td', {}, s.starts_at ? formatDateTime(s.starts_at) : s.date),
        h('td', {}, s.theater),
        h('td', {}, String(s.available ?? '')),
        h('td', {}, h('a', { href: `#/staff/showtimes/${encodeURIComponent(s.showtime_id)}`,
          'aria-label': `Occupancy and revenue, ${s.theater}, ${s.starts_at ? formatDateTime(s.starts_at) : s.date}` },
        'Occupancy and revenue')))))));
}

function tomorrow() {
  const d = new Date(Date.now() + 86_400_000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function showtimeForm(event, ctx) {
  const date = h('input', { name: 'date', type: 'date', required: true, value: tomorrow() });
  const startsAt = h('input', { name: 'starts_at', type: 'time', required: true, value: '19:30' });
  const theater = h('input', { name: 'theater', type: 'text', required: true, maxlength: '100', autocomplete: 'off' });
  const rows = h('input', { name: 'rows', type: 'number', required: true, min: '1', max: '52', step: '1', value: '8', inputmode: 'numeric' });
  const perRow = h('input', { name: 'seats_per_row', type: 'number', required: true, min: '1', max: '60', step: '1', value: '10', inputmode: 'numeric' });
  const price = h('input', { name: 'price', type: 'text', required: true, inputmode: 'decimal', pattern: '\\d{1,6}(\\.\\d{1,2})?', value: '10.00' });
  const currency = h('input', { name: 'currency', type: 'text', required: true, pattern: '[A-Z]{3}', maxlength: '3', value: 'USD', autocapitalize: 'characters' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'staff-form', 'data-form': 'new-showtime' },
    h('div', { class: 'field-row' },
      field('Date', date),
      field('Starts at (UTC)', startsAt, 'Hours and minutes, in UTC.'),
      field('Theater', theater, 'e.g. Hall 3. One showtime per event, date and theater.')),
    h('div', { class: 'field-row' },
      field('Rows', rows, '1 to 52.'),
      field('Seats per row', perRow, '1 to 60.'),
      field('Price per seat', price, 'e.g. 12.50'),
      field('Currency', currency, 'Three capitals, e.g. USD.')),
    error,
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create showtime')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {
      date: date.value,
      starts_at: startsAt.value,
      theater: theater.value.trim(),
      rows: Number.parseInt(rows.value, 10),
      seats_per_row: Number.parseInt(perRow.value, 10),
      price: price.value.trim(),
      currency: currency.value.trim().toUpperCase(),
    };
    const created = await submitForm(form, error, () => api.createShowtime(event.id, body, { signal: ctx.signal }));
    if (created) ctx.navigate(`#/staff/showtimes/${encodeURIComponent(created.showtime_id)}?created=1`);
  });
  return form;
}

// ---- #/staff/showtimes/<id>: occupancy and revenue, live ---------------------------------------------------------

const COUNT_LABELS = [
  ['available', 'Available'],
  ['held', 'Held (choosing or paying)'],
  ['sold', 'Sold'],
  ['void', 'Void (payment taken back)'],
];

export async function viewStaffShowtime(ctx, params, query) {
  const showtimeId = params[0];
  const here = `#/staff/showtimes/${encodeURIComponent(showtimeId)}`;
  if (!staffGate(ctx, 'Staff: showtime', here)) return;
  append(ctx.main, loading('Loading showtime…'));
  let report;
  try {
    report = await api.staffShowtime(showtimeId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    fill(ctx.main, heading('Staff: showtime'), staffNav(null), errorNotice(err));
    return;
  }
  ctx.setTitle(`Staff: ${report.event_title}, ${report.theater}`);
  const liveBadge = h('span', { id: 'live-status', class: 'live-status', 'data-state': 'connecting' }, 'Connecting…');
  const when = h('span', { class: 'showtime-when' });
  const counts = h('dl', { class: 'occupancy', id: 'occupancy' });
  const bar = h('div', { class: 'occupancy-bar', 'aria-hidden': 'true' });
  const revenue = h('p', { class: 'revenue' });
  const updated = h('p', { class: 'hint', id: 'report-updated' });
  const refreshError = h('div', {});

  function render(r) {
    report = r;
    when.textContent = `${r.starts_at ? formatDateTime(r.starts_at) : formatDate(r.date)} · ${r.theater}`;
    fill(counts, COUNT_LABELS.filter(([key]) => key !== 'void' || r.void > 0).map(([key, label]) => h('div', { class: 'count', 'data-count': key },
      h('dt', {}, label), h('dd', { id: `count-${key}` }, String(r[key])))));
    fill(bar, COUNT_LABELS.map(([key]) => h('span', { 'data-count': key, style: { 'flex-grow': r[key] || 0 } })));
    fill(revenue, 'Revenue so far: ', h('strong', { id: 'revenue', 'data-revenue': r.revenue }, money(r.revenue, r.currency)),
      ` (${r.sold} of ${r.tickets} seats sold at ${money(r.price, r.currency)} each)`);
    updated.textContent = `Updated at ${new Date().toLocaleTimeString()}.`;
  }

  fill(ctx.main,
    h('p', { class: 'breadcrumb' }, h('a', { href: `#/staff/events/${encodeURIComponent(report.event_id)}` }, `← ${report.event_title}`)),
    heading(report.event_title),
    staffNav(null),
    query.get('created') ? notice(`Showtime created with ${report.tickets} seats.`, 'success') : null,
    h('p', { class: 'meta' }, when, ' ', liveBadge),
    h('section', { 'aria-labelledby': 'occupancy-heading' },
      h('h2', { id: 'occupancy-heading' }, 'Occupancy'),
      counts, bar, revenue, updated, refreshError,
      h('p', { class: 'hint' }, 'Counts follow the seat map live; they are not read aloud as they change.')),
    h('section', { 'aria-labelledby': 'move-heading' },
      h('h2', { id: 'move-heading' }, 'Change the start time'),
      moveForm(() => report, render, ctx)),
    saleSection(showtimeId, ctx),
    h('p', {}, h('a', { href: `#/events/${encodeURIComponent(report.event_id)}/showtimes/${encodeURIComponent(showtimeId)}` }, 'Open the seat map buyers see'),
      ' · ', h('a', { href: `#/staff/checkin?showtime=${encodeURIComponent(showtimeId)}`, id: 'door-link' }, 'Door check-in for this showtime')));
  render(report);

  // The room's updates say that something changed; the report (one read of the hall) says what it adds up to.
  let timer = null;
  let inFlight = false;
  let again = false;
  let lastFetch = Date.now();
  async function refresh() {
    timer = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    lastFetch = Date.now();
    try {
      render(await api.staffShowtime(showtimeId, { signal: ctx.signal }));
      fill(refreshError);
    } catch (err) {
      if (!isAbort(err)) fill(refreshError, errorNotice(err));
    } finally {
      inFlight = false;
      if (again) { again = false; schedule(); }
    }
  }
  function schedule() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(0, lastFetch + REPORT_MIN_GAP_MS - Date.now()));
  }
  const live = new LiveConnection({
    urlFactory: () => liveUrl(showtimeId),
    onMessage: (msg) => { if (msg.type === 'ticket_status' || msg.type === 'snapshot') schedule(); },
    onState: (state) => {
      liveBadge.dataset.state = state;
      liveBadge.textContent = { open: 'Live', connecting: 'Connecting…', reconnecting: 'Offline, reconnecting…' }[state] || 'Not live';
      if (state === 'open') schedule(); // changes may have come while it was down
    },
  });
  live.start();
  const idle = setInterval(() => { if (Date.now() - lastFetch >= REPORT_IDLE_MS) schedule(); }, 5_000);
  ctx.onCleanup(() => {
    clearTimeout(timer);
    clearInterval(idle);
    live.stop();
  });
}

function moveForm(current, render, ctx) {
  const report = current();
  const time = parseTime(report.starts_at);
  const startsAt = h('input', {
    name: 'starts_at', type: 'time', required: true,
    value: time === null ? '' : new Date(time).toISOString().slice(11, 16),
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const saved = h('p', { class: 'form-saved', role: 'status' });
  const form = h('form', { class: 'staff-form', 'data-form': 'move-showtime' },
    field(`New start on ${formatDate(report.date)} (UTC)`, startsAt,
      'Only while no seat is sold or being paid for: buyers’ receipts name the start they bought.'),
    error,
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, 'Change start time')),
    saved);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    saved.textContent = '';
    const moved = await submitForm(form, error, () => api.updateShowtime(report.event_id, report.showtime_id,
      { starts_at: startsAt.value }, { signal: ctx.signal }));
    if (moved) {
      render({ ...current(), starts_at: moved.starts_at });
      saved.textContent = `Start changed to ${formatTime(parseTime(moved.starts_at))}.`;
    }
  });
  return form;
}
