// REST client and the tab's session. Tokens live in sessionStorage (one login per tab); the access token is
// refreshed through /api/token/refresh/ shortly before it expires. The JWT's `exp` is read only for timing:
// the server is the only judge of a token's validity.

import { getConfig } from './config.js';

const STORAGE_KEY = 'tickets.session';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const FALLBACK_MESSAGES = {
  0: 'Could not reach the server. Check your connection and try again.',
  400: 'The request was not accepted.',
  401: 'Please log in again.',
  403: 'You are not allowed to do that.',
  404: 'Not found.',
  409: 'That conflicts with the current state. Reload and try again.',
  422: 'The payment provider refused the request.',
  429: 'Too many requests. Please wait a moment and try again.',
  502: 'The payment provider is unavailable. Please try again shortly.',
  503: 'The service is unavailable. Please try again shortly.',
};

/** Decodes a JWT's payload without verifying it (timing only). */
export function decodeJwt(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '='));
    return JSON.parse(decodeURIComponent(Array.from(json, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('')));
  } catch {
    return null;
  }
}

function expiryMs(token) {
  const exp = decodeJwt(token)?.exp;
  return typeof exp === 'number' ? exp * 1000 : null;
}

// ---- session ------------------------------------------------------------------------------------------------

const listeners = new Set();
let state = load();
let refreshTimer = null;
let refreshing = null;

function load() {
  try {
    const raw = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (raw && typeof raw.access === 'string' && typeof raw.refresh === 'string') return raw;
  } catch {
    // Corrupt storage: start logged out.
  }
  return null;
}

function save(next) {
  state = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
  scheduleRefresh();
  for (const fn of listeners) {
    try { fn(state); } catch (err) { console.error(err); }
  }
}

export const session = {
  get loggedIn() { return state !== null; },
  get access() { return state?.access ?? null; },
  get email() { return state?.email ?? null; },
  get isStaff() { return Boolean(state?.isStaff); },
  /** Door staff: may use the check-in page (staff may too). */
  get isScanner() { return Boolean(state?.isScanner); },
  /** Subscribes to login / logout / profile changes; returns the unsubscribe function. */
  subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  /** Ends the sign-in on the server too (its tokens and sockets stop working everywhere), then forgets it. */
  async logout() {
    const access = state?.access;
    save(null);
    if (access) {
      try {
        await request('POST', '/auth/logout/', { auth: false, headers: { Authorization: `Bearer ${access}` } });
      } catch {
        // Signed out here anyway; the server-side session ends with its refresh token's lifetime.
      }
    }
  },
};

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  if (!state) return;
  const exp = expiryMs(state.access);
  if (exp === null) return;
  const iat = decodeJwt(state.access)?.iat;
  const lifetime = typeof iat === 'number' ? exp - iat * 1000 : 300_000;
  // Refresh a minute early, or a quarter of the lifetime early for short-lived tokens.
  const margin = Math.min(60_000, Math.max(2_000, lifetime / 4));
  const delay = Math.max(1_000, exp - margin - Date.now());
  refreshTimer = setTimeout(() => { refreshAccess().catch(() => {}); }, Math.min(delay, 2 ** 31 - 1));
}

/** Gets a new access token (one request at a time). Logs out when the refresh token is refused. */
export function refreshAccess() {
  if (!state) return Promise.reject(new ApiError(401, 'unauthorized', 'Please log in.'));
  refreshing ??= (async () => {
    const refreshToken = state.refresh;
    try {
      const body = await request('POST', '/token/refresh/', { body: { refresh: refreshToken }, auth: false });
      if (state && state.refresh === refreshToken) {
        save({ ...state, access: body.access, refresh: body.refresh || state.refresh });
      }
      return state?.access ?? null;
    } catch (err) {
      if (err.status === 401 || err.status === 400) {
        save(null);
        throw new ApiError(401, 'unauthorized', 'Your session has expired. Please log in again.');
      }
      scheduleRetry();
      throw err;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function scheduleRetry() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { refreshAccess().catch(() => {}); }, 5_000 + Math.random() * 5_000);
}

/** An access token valid for at least `seconds` more (refreshing first if needed), or null when logged out. */
export async function freshAccess(seconds = 20) {
  if (!state) return null;
  const exp = expiryMs(state.access);
  if (exp !== null && exp - Date.now() < seconds * 1000) {
    try {
      await refreshAccess();
    } catch (err) {
      if (err.status === 401) return null;
      // Network trouble: try with the token we have; the server decides.
    }
  }
  return state?.access ?? null;
}

// Timers are throttled in background tabs: check again when the tab comes back.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state) freshAccess(90).catch(() => {});
});
window.addEventListener('storage', () => { state = load(); scheduleRefresh(); });

export async function login(email, password) {
  const tokens = await request('POST', '/token/', { body: { email, password }, auth: false });
  save({ access: tokens.access, refresh: tokens.refresh, email, isStaff: false });
  try {
    const me = await request('GET', '/auth/me/');
    if (state) save({ ...state, email: me.email || email, isStaff: Boolean(me.is_staff), isScanner: Boolean(me.is_scanner) });
  } catch {
    // The profile is cosmetic here; the tokens are what matter.
  }
}

export async function register(email, password) {
  await request('POST', '/auth/register/', { body: { email, password }, auth: false });
  await login(email, password);
}

// ---- requests -----------------------------------------------------------------------------------------------

function buildUrl(apiBase, path, query) {
  const url = new URL(apiBase + path);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url.href;
}

async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * Calls the REST API. Returns the parsed JSON body; throws ApiError carrying the server's {code, message}.
 * `auth: true` sends the bearer token when logged in and retries once after a refresh on 401.
 */
export async function request(method, path, { body, query, auth = true, signal, headers: extra = {} } = {}) {
  const { apiBase } = await getConfig();
  const url = buildUrl(apiBase, path, query);
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: 'application/json', ...extra };
    let token = null;
    if (auth && state) {
      token = await freshAccess(15);
      if (token) headers.Authorization = `Bearer ${token}`;
    }
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network_error', FALLBACK_MESSAGES[0]);
    }
    const data = await readBody(res);
    if (res.ok) return data;
    if (res.status === 401 && token && attempt === 0) {
      try {
        await refreshAccess();
        continue;
      } catch {
        throw new ApiError(401, 'unauthorized', 'Your session has expired. Please log in again.', data);
      }
    }
    const code = typeof data?.code === 'string' ? data.code : `http_${res.status}`;
    const message = typeof data?.message === 'string' && data.message
      ? data.message
      : FALLBACK_MESSAGES[res.status] || `The server answered ${res.status}.`;
    throw new ApiError(res.status, code, message, data);
  }
}

export const api = {
  categories: (opts) => request('GET', '/categories/', { auth: false, ...opts }),
  events: (query, opts) => request('GET', '/events/', { query, auth: false, ...opts }),
  event: (id, opts) => request('GET', `/events/${encodeURIComponent(id)}/`, { auth: false, ...opts }),
  tickets: (eventId, query, opts) => request('GET', `/events/${encodeURIComponent(eventId)}/tickets/`, { query, ...opts }),
  cart: (showtimeId, opts) => request('GET', '/cart/', { query: { showtime_id: showtimeId }, ...opts }),
  createPayment: (showtimeId, opts) => request('POST', '/payment/create/', { body: { showtime_id: showtimeId }, ...opts }),
  executePayment: (query, opts) => request('GET', '/payment/execute/', { query, ...opts }),
  cancelPayment: (token, opts) => request('GET', '/payment/cancel/', { query: { token }, ...opts }),
  refund: (orderId, ticketIds, opts) => request('POST', '/payment/refund/', {
    body: ticketIds ? { order_id: orderId, ticket_ids: ticketIds } : { order_id: orderId },
    ...opts,
  }),
  orders: (query, opts) => request('GET', '/orders/', { query, ...opts }),
  order: (id, opts) => request('GET', `/orders/${encodeURIComponent(id)}/`, opts),
  orderTickets: (id, opts) => request('GET', `/orders/${encodeURIComponent(id)}/tickets/`, opts),
  // Door check-in (staff): scan, and what an offline scanner keeps (public keys, revocations since a cursor).
  checkin: (body, opts) => request('POST', '/checkin/', { body, ...opts }),
  setScanner: (body, opts) => request('POST', '/staff/scanners/', { body, ...opts }),
  checkinKeys: (opts) => request('GET', '/checkin/keys/', { auth: false, ...opts }),
  revocations: (showtimeId, since, opts) => request('GET',
    `/checkin/showtimes/${encodeURIComponent(showtimeId)}/revocations/`, { query: { since }, ...opts }),
  resendTickets: (id, opts) => request('POST', `/orders/${encodeURIComponent(id)}/resend/`, opts),
  // Waiting room (docs/API.md, "Waiting room").
  sale: (showtimeId, opts) => request('GET', `/showtimes/${encodeURIComponent(showtimeId)}/sale/`, { auth: false, ...opts }),
  joinQueue: (showtimeId, opts) => request('POST', `/showtimes/${encodeURIComponent(showtimeId)}/queue/`, opts),
  queueStatus: (showtimeId, opts) => request('GET', `/showtimes/${encodeURIComponent(showtimeId)}/queue/`, opts),
  leaveQueue: (showtimeId, opts) => request('DELETE', `/showtimes/${encodeURIComponent(showtimeId)}/queue/`, opts),
  // Staff only (the server answers 403 to everyone else).
  staffSale: (id, opts) => request('GET', `/staff/showtimes/${encodeURIComponent(id)}/sale/`, opts),
  setSale: (id, body, opts) => request('PUT', `/staff/showtimes/${encodeURIComponent(id)}/sale/`, { body, ...opts }),
  controlSale: (id, body, opts) => request('PATCH', `/staff/showtimes/${encodeURIComponent(id)}/sale/`, { body, ...opts }),
  createEvent: (body, opts) => request('POST', '/events/', { body, ...opts }),
  updateEvent: (id, body, opts) => request('PATCH', `/events/${encodeURIComponent(id)}/`, { body, ...opts }),
  createShowtime: (eventId, body, opts) => request('POST', `/events/${encodeURIComponent(eventId)}/showtimes/`, { body, ...opts }),
  updateShowtime: (eventId, showtimeId, body, opts) => request('PATCH',
    `/events/${encodeURIComponent(eventId)}/showtimes/${encodeURIComponent(showtimeId)}/`, { body, ...opts }),
  staffShowtime: (id, opts) => request('GET', `/staff/showtimes/${encodeURIComponent(id)}/`, opts),
  staffOrders: (query, opts) => request('GET', '/staff/orders/', { query, ...opts }),
  staffRefund: (orderId, ticketIds, opts) => request('POST', `/staff/orders/${encodeURIComponent(orderId)}/refund/`, {
    body: ticketIds ? { ticket_ids: ticketIds } : {},
    ...opts,
  }),
};

/**
 * Builds the WebSocket URL for a showtime room with a fresh single-use ticket (the access token never goes in a
 * URL, where logs and histories keep it), or null when logged out.
 */
export async function liveUrl(showtimeId) {
  const { wsUrl } = await getConfig();
  if (!(await freshAccess(30))) return null;
  const { ticket } = await request('POST', '/auth/ws-ticket/', {});
  const url = new URL(wsUrl);
  url.searchParams.set('showtime_id', showtimeId);
  url.searchParams.set('ticket', ticket);
  return url.href;
}

scheduleRefresh();
