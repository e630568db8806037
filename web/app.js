// Entry point: the page shell (header, navigation) and a small router.
// In-app pages are hash routes (#/events, #/events/<id>/showtimes/<showtime>, #/orders, ...), so the files can be
// served from any static host; /paypal/return and /paypal/cancel are real paths that serve this same page.

import { session } from './js/api.js';
import { getConfig } from './js/config.js';
import { h, clear, append, fill } from './js/util.js';
import { errorNotice } from './js/ui.js';
import { viewLogin, viewRegister } from './js/views/auth.js';
import { viewEvent, viewEvents } from './js/views/events.js';
import { viewSeats } from './js/views/seats.js';
import { viewPaypalCancel, viewPaypalReturn } from './js/views/payment.js';
import { viewOrder, viewOrders } from './js/views/orders.js';
import { viewStaffEvent, viewStaffHome, viewStaffShowtime } from './js/views/staff.js';
import { viewStaffOrders } from './js/views/staffOrders.js';
import { viewCheckin } from './js/views/checkin.js';

const APP_NAME = 'Tickets';

const routes = [
  [/^\/events$/, viewEvents, 'events'],
  [/^\/events\/([^/]+)$/, viewEvent, 'events'],
  [/^\/events\/([^/]+)\/showtimes\/([^/]+)$/, viewSeats, 'events'],
  [/^\/orders$/, viewOrders, 'orders'],
  [/^\/orders\/([^/]+)$/, viewOrder, 'orders'],
  [/^\/login$/, viewLogin, 'login'],
  [/^\/register$/, viewRegister, 'register'],
  [/^\/staff$/, viewStaffHome, 'staff'],
  [/^\/staff\/events\/([^/]+)$/, viewStaffEvent, 'staff'],
  [/^\/staff\/showtimes\/([^/]+)$/, viewStaffShowtime, 'staff'],
  [/^\/staff\/orders$/, viewStaffOrders, 'staff'],
  [/^\/staff\/checkin$/, viewCheckin, 'staff'],
];

const main = document.getElementById('main');
const nav = document.getElementById('site-nav');
const paypalPage = /\/paypal\/(return|cancel)\/?$/.exec(location.pathname)?.[1] || null;

let current = null; // { dispose }
let firstRender = true;

/** Where an in-app link goes. On the /paypal/* pages the <base> element points hash links at the app root. */
function navigate(hash) {
  if (paypalPage) window.location.assign(new URL(hash, document.baseURI).href);
  else if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function parseHash() {
  const hash = window.location.hash.startsWith('#/') ? window.location.hash : '#/events';
  const raw = hash.slice(1);
  const [path, search = ''] = raw.split('?');
  return { path: path.replace(/\/+$/, '') || '/events', query: new URLSearchParams(search) };
}

function renderNav(section) {
  const link = (href, text, key) => h('li', {}, h('a', { href, 'aria-current': section === key ? 'page' : null }, text));
  const items = [link('#/events', 'Events', 'events'), link('#/orders', 'My orders', 'orders')];
  if (session.isStaff) items.push(link('#/staff', 'Staff', 'staff'));
  else if (session.isScanner) items.push(link('#/staff/checkin', 'Door check-in', 'staff'));
  if (session.loggedIn) {
    const out = h('button', { type: 'button', class: 'link-button', id: 'logout' }, 'Log out');
    out.addEventListener('click', () => {
      session.logout();
      navigate('#/events');
    });
    items.push(h('li', { class: 'who' }, h('span', { class: 'email', title: session.email || '' }, session.email || 'Logged in')), h('li', {}, out));
  } else {
    items.push(link('#/login', 'Log in', 'login'), link('#/register', 'Register', 'register'));
  }
  fill(nav, h('ul', {}, items));
}

async function route() {
  current?.dispose();
  const controller = new AbortController();
  const cleanups = [];
  current = {
    dispose() {
      controller.abort();
      for (const fn of cleanups.splice(0)) {
        try { fn(); } catch (err) { console.error(err); }
      }
    },
  };
  const ctx = {
    main,
    signal: controller.signal,
    onCleanup: (fn) => cleanups.push(fn),
    navigate,
    reload: () => route(),
    setTitle: (title) => { document.title = title ? `${title} · ${APP_NAME}` : APP_NAME; },
  };

  let view = null;
  let params = [];
  let section = null;
  let query;
  if (paypalPage && !window.location.hash.startsWith('#/')) {
    view = paypalPage === 'return' ? viewPaypalReturn : viewPaypalCancel;
    query = new URLSearchParams(window.location.search);
    section = 'orders';
  } else {
    const parsed = parseHash();
    query = parsed.query;
    for (const [pattern, fn, key] of routes) {
      const m = pattern.exec(parsed.path);
      if (m) {
        view = fn;
        params = m.slice(1).map(decodeURIComponent);
        section = key;
        break;
      }
    }
  }
  renderNav(section);
  clear(main);
  main.setAttribute('aria-busy', 'true');
  try {
    if (!view) {
      ctx.setTitle('Not found');
      append(main, h('h1', { class: 'page-title', tabindex: '-1' }, 'Page not found'),
        h('p', {}, h('a', { href: '#/events' }, 'See the events')));
    } else {
      await view(ctx, params, query);
      // After a navigation, move focus to the new page's heading so screen readers announce it, unless the user
      // is already working inside the page (not on the first load: the user did not navigate).
      if (!firstRender && !controller.signal.aborted && !main.contains(document.activeElement)) {
        main.querySelector('.page-title')?.focus();
      }
    }
  } catch (err) {
    if (err?.name !== 'AbortError') {
      console.error(err);
      append(main, errorNotice(err));
    }
  } finally {
    if (!controller.signal.aborted) main.setAttribute('aria-busy', 'false');
    firstRender = false;
  }
}

window.addEventListener('hashchange', () => {
  // Only "#/..." is a route; any other fragment is an in-page jump and leaves the view alone.
  if (window.location.hash && !window.location.hash.startsWith('#/')) return;
  window.scrollTo(0, 0);
  route();
});
document.getElementById('skip-to-content')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
session.subscribe(() => renderNav(current ? parseHash().path.split('/')[1] : null));

getConfig().finally(() => route());

// The app shell stays loadable without a network (web/sw.js): a door scanner may be reloaded offline.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL('sw.js', document.baseURI))
    .then(() => navigator.serviceWorker.ready)
    .then((registration) => registration.active?.postMessage({
      keep: [new URL('./', document.baseURI).href, ...performance.getEntriesByType('resource').map((e) => e.name)],
    }))
    .catch((err) => console.warn('no offline shell', err));
}
