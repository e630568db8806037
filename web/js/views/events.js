import { api } from '../api.js';
import { h, formatDate, formatTime, isAbort, parseTime, append, fill } from '../util.js';
import { heading, loading, errorNotice, notice, pagedList } from '../ui.js';

let categoriesCache = null;

export async function viewEvents(ctx, _params, query) {
  ctx.setTitle('Events');
  const category = query.get('category') || '';
  const filterNav = h('nav', { class: 'filters', 'aria-label': 'Categories' });
  const list = h('ul', { class: 'event-list', 'aria-live': 'polite', 'aria-busy': 'true' });
  const status = h('p', { class: 'list-status', role: 'status' });
  const more = h('button', { type: 'button', class: 'secondary load-more', hidden: true }, 'Load more events');
  append(ctx.main, heading('Events'), filterNav, list, status, more);

  // Categories: one chip per category, the current one marked with aria-current.
  (async () => {
    try {
      categoriesCache ??= (await api.categories({ signal: ctx.signal })).results || [];
      const chip = (slug, name) => h('a', {
        href: slug ? `#/events?category=${encodeURIComponent(slug)}` : '#/events',
        class: 'chip',
        'aria-current': slug === category ? 'page' : null,
        'data-category': slug || 'all',
      }, name);
      append(filterNav, h('ul', {}, h('li', {}, chip('', 'All')), categoriesCache.map((c) => h('li', {}, chip(c.slug, c.name)))));
    } catch (err) {
      if (!isAbort(err)) append(filterNav, errorNotice(err));
    }
  })();

  await pagedList({
    list,
    status,
    more,
    fetchPage: (cursor) => api.events({ category, cursor }, { signal: ctx.signal }),
    render: eventCard,
    loadingText: 'Loading events…',
    summary: (count, hasMore) => (count
      ? `${count} event${count === 1 ? '' : 's'} shown${hasMore ? '' : ', all loaded'}.`
      : 'No events in this category.'),
  });
}

function eventCard(event) {
  return h('li', { class: 'event-card', 'data-event-id': event.id },
    h('h2', {}, h('a', { href: `#/events/${encodeURIComponent(event.id)}` }, event.title)),
    h('p', { class: 'meta' },
      event.category?.name ? h('span', { class: 'tag' }, event.category.name) : null,
      event.duration_minutes ? ` ${event.duration_minutes} min` : null),
    event.description ? h('p', { class: 'description' }, event.description) : null);
}

export async function viewEvent(ctx, params) {
  const eventId = params[0];
  append(ctx.main, loading('Loading event…'));
  let event;
  try {
    event = await api.event(eventId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    fill(ctx.main, heading('Event'), errorNotice(err), h('p', {}, h('a', { href: '#/events' }, 'Back to events')));
    return;
  }
  ctx.setTitle(event.title);
  const showtimes = [...(event.showtimes || [])].sort((a, b) => String(a.starts_at || a.date).localeCompare(String(b.starts_at || b.date)));
  const byDate = new Map();
  for (const s of showtimes) {
    if (!byDate.has(s.date)) byDate.set(s.date, []);
    byDate.get(s.date).push(s);
  }
  fill(ctx.main, 
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/events' }, '← All events')),
    heading(event.title),
    h('p', { class: 'meta' },
      event.category?.name ? h('span', { class: 'tag' }, event.category.name) : null,
      event.duration_minutes ? ` ${event.duration_minutes} min` : null),
    event.description ? h('p', { class: 'description' }, event.description) : null,
    h('h2', {}, 'Showtimes'),
    showtimes.length ? null : notice('No showtimes are scheduled yet.'),
    [...byDate.entries()].map(([date, list]) => h('section', { class: 'showtime-day' },
      h('h3', {}, formatDate(date)),
      h('ul', { class: 'showtimes' }, list.map((s) => h('li', {},
        h('a', {
          class: 'showtime',
          href: `#/events/${encodeURIComponent(event.id)}/showtimes/${encodeURIComponent(s.showtime_id)}`,
          'data-showtime-id': s.showtime_id,
        },
        h('span', { class: 'showtime-time' }, parseTime(s.starts_at) !== null ? formatTime(parseTime(s.starts_at)) : s.date),
        h('span', { class: 'showtime-theater' }, s.theater),
        h('span', { class: 'showtime-available' }, availability(s.available)))))))),
  );
}

function availability(value) {
  if (typeof value === 'number') return value === 0 ? 'sold out' : `${value} seat${value === 1 ? '' : 's'} free`;
  if (value === false) return 'sold out';
  return '';
}
