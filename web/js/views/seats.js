// The seat map of one showtime: REST listing first, then live over the WebSocket, plus the cart and checkout.

import { api, liveUrl, session } from '../api.js';
import { LiveConnection, UpdateOrder } from '../live.js';
import { SeatMap } from '../seatmap.js';
import { h, clear, countdown, formatDateTime, formatTime, isAbort, money, parseTime, seatName, append, fill } from '../util.js';
import { announce, CHECKOUT_KEY, errorNotice, heading, loading, loginPrompt, notice } from '../ui.js';
import { keepAdmission, savedAdmission, waitForAdmission } from './waitroom.js';

const PENDING_TIMEOUT_MS = 8_000;
const SNAPSHOT_TIMEOUT_MS = 4_000;
// A socket the server replaces (API Gateway's 2-hour maximum age, its idle timeout) is back within about a
// second: a gap shorter than this is not shown at all, the map keeps its last known state meanwhile.
const LOST_GRACE_MS = 2_000;

function minutes(seconds) {
  const m = Math.max(1, Math.ceil((Number(seconds) || 60) / 60));
  return m === 1 ? 'a minute' : `${m} minutes`;
}

function errorText(code, name, serverMessage, retryAfter) {
  switch (code) {
    case 'rate_limited': return `Too many requests at once. Please wait ${minutes(retryAfter)} and try again.`;
    case 'seat_cooldown': return `Your hold on ${name} ran out, so it is open to others now. You can pick it again in ${minutes(retryAfter)}.`;
    case 'hold_budget_spent': return `You have used your time to hold seats for this showtime. You can hold seats again in ${minutes(retryAfter)}; seats already in checkout stay yours.`;
    case 'limit_reached': {
      const n = /\b(\d+)\b/.exec(serverMessage || '')?.[1] || '4';
      return `You can hold at most ${n} seats for this showtime`;
    }
    case 'ticket_unavailable': return `${name} is not available: someone else holds it or it is sold.`;
    case 'not_holder': return `You do not hold ${name} (your hold may have expired).`;
    case 'checkout_in_progress': return `${name} is in checkout: finish or cancel the payment first.`;
    case 'busy': return `The server is busy and could not update ${name}. Please try again.`;
    case 'not_found': return `${name} is not part of this showtime.`;
    case 'bad_request': return `The server did not understand the request${serverMessage ? `: ${serverMessage}` : '.'}`;
    case 'not_on_sale': return serverMessage || 'This showtime is not on sale yet.';
    case 'admission_required':
    case 'admission_invalid':
    case 'admission_lapsed':
      return 'Your turn to pick seats has ended (or this tab has no turn). Seats you hold stay yours until their hold runs out; to pick more, join the queue again.';
    default: return serverMessage || `The server refused the request (${code || 'unknown error'}).`;
  }
}

export async function viewSeats(ctx, params) {
  const [eventId, showtimeId] = params;
  const here = `#/events/${encodeURIComponent(eventId)}/showtimes/${encodeURIComponent(showtimeId)}`;
  append(ctx.main, loading('Loading seats…'));

  let event;
  try {
    event = await api.event(eventId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    fill(ctx.main, heading('Seats'), errorNotice(err), h('p', {}, h('a', { href: '#/events' }, 'Back to events')));
    return;
  }
  const showtime = (event.showtimes || []).find((s) => String(s.showtime_id) === String(showtimeId));
  if (!showtime) {
    fill(ctx.main, heading(event.title), errorNotice({ message: 'This showtime does not exist (any more).' }),
      h('p', {}, h('a', { href: `#/events/${encodeURIComponent(eventId)}` }, 'Pick another showtime')));
    return;
  }
  ctx.setTitle(`Seats: ${event.title}`);
  const loggedIn = session.loggedIn;
  const where = `${showtime.starts_at ? formatDateTime(showtime.starts_at) : showtime.date} · ${showtime.theater}`;

  // A showtime may have on-sale settings: before the sale nobody picks seats; a guarded one takes picks only from
  // people its waiting room admitted. Viewing stays open to everyone.
  let sale = null;
  try {
    sale = await api.sale(showtimeId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
  }
  let admission = null;
  if (sale?.guarded && loggedIn) {
    admission = savedAdmission(showtimeId)
      || await waitForAdmission(ctx, { showtimeId, title: event.title, where, backHref: `#/events/${encodeURIComponent(eventId)}` });
    if (!admission) return; // left the queue, or the page went away
    ctx.setTitle(`Seats: ${event.title}`);
  }
  let saleNote = null;
  if (sale?.guarded && !loggedIn) {
    saleNote = loginPrompt('This sale has a waiting room: log in to join the queue. You can look at the seats meanwhile.', here);
  } else if (admission) {
    saleNote = notice(`It is your turn: pick your seats before ${formatTime(parseTime(admission.expires_at))}.`, 'info');
    saleNote.id = 'admission-note';
  } else if (sale && !sale.opened) {
    saleNote = notice(`On sale from ${formatDateTime(sale.on_sale_at)}: seats can be picked from then on.`, 'info');
    saleNote.id = 'sale-note';
  }

  let live = null; // LiveConnection, when logged in
  let snapshotTimer = null;
  // Snapshots carry no request id: every answer is measured against the oldest request still unanswered.
  const snapshots = { outstanding: 0, since: null }; // since: seatMap.version at that oldest request
  let retryAt = null;
  let restoredTimer = null;
  let graceTimer = null; // running while a lost connection is not shown yet
  let quietLoss = null; // the latest state seen during that grace: {state, info}
  let lostShown = false; // the page says the connection is lost (badge, banner, dimmed hall)
  let cart = null;
  let cartTimer = null;
  let cartGeneration = 0;

  // ---- layout ---------------------------------------------------------------------------------------------
  const banner = h('div', { id: 'conn-banner', class: 'conn-banner', role: 'status', 'data-state': 'idle', hidden: true });
  const liveBadge = h('span', { id: 'live-status', class: 'live-status', 'data-state': loggedIn ? 'connecting' : 'off' },
    loggedIn ? 'Connecting…' : 'Not live');
  const messageInfo = h('p', { id: 'seat-message', class: 'seat-message', 'aria-live': 'polite' });
  const messageError = h('p', { id: 'seat-error', class: 'seat-error', 'aria-live': 'assertive' });
  const hallBox = h('div', { class: 'hall-scroll' });
  const cartHeading = h('h2', { id: 'cart-heading', tabindex: '-1' }, 'Your seats');
  const cartBody = h('div', { class: 'cart-body' });
  const payButton = h('button', { type: 'button', id: 'pay-button', class: 'primary pay', disabled: true }, 'Pay with PayPal');
  const payStatus = h('p', { class: 'pay-status', role: 'status' });
  const skip = h('button', { type: 'button', class: 'skip-link' }, 'Skip the seat map');
  skip.addEventListener('click', () => cartHeading.focus());
  const prices = h('p', { id: 'seat-prices', class: 'seat-prices' });
  // Shown only while the hall is wider than its box (a big hall on a phone): the seats past the edge exist.
  const scrollHint = h('p', { id: 'hall-scroll-hint', class: 'hall-scroll-hint', hidden: true });
  // On a narrow screen the cart is below the hall: this bar keeps the picked seats, the total and the way to pay
  // in sight while choosing (CSS shows it only there).
  const barSummary = h('p', { id: 'cart-bar-summary', class: 'cart-bar-summary' });
  const barPay = h('button', { type: 'button', id: 'cart-bar-pay', class: 'primary' }, 'Pay with PayPal');
  const barReview = h('a', { href: '#cart-heading', class: 'cart-bar-review' }, 'Review');
  const cartBar = h('div', { id: 'cart-bar', class: 'cart-bar', role: 'region', 'aria-label': 'Your seats, total', hidden: true },
    barSummary, h('p', { class: 'cart-bar-actions' }, barReview, barPay));
  barPay.addEventListener('click', () => payButton.click());
  barReview.addEventListener('click', (event) => {
    event.preventDefault();
    cartHeading.scrollIntoView({ block: 'start' });
    cartHeading.focus();
  });

  fill(ctx.main, 
    h('p', { class: 'breadcrumb' }, h('a', { href: `#/events/${encodeURIComponent(eventId)}` }, `← ${event.title}`)),
    heading(event.title),
    h('p', { class: 'meta' }, `${where} `, liveBadge),
    banner,
    saleNote,
    loggedIn || sale?.guarded ? null : loginPrompt('Log in to choose seats. The map below is not updated live until you do.', here),
    h('div', { class: 'seat-layout' },
      h('section', { class: 'hall-panel', 'aria-labelledby': 'hall-heading' },
        h('h2', { id: 'hall-heading', class: 'visually-hidden' }, 'Seat map'),
        skip,
        legend(),
        prices,
        h('div', { class: 'messages' }, messageInfo, messageError),
        h('div', { class: 'screen', 'aria-hidden': 'true' }, 'Screen'),
        scrollHint,
        hallBox,
        h('p', { class: 'hint' }, 'Use Tab or the arrow keys to move between seats, Enter or Space to pick or release one.')),
      cartBar,
      h('aside', { class: 'cart', 'aria-labelledby': 'cart-heading' }, cartHeading, cartBody, payButton, payStatus)),
  );

  // `heldId`: the seat a "held for you" message is about; the message goes once that hold is over, however it
  // ended (expiry seen here, the sweep's update, a snapshot, a checkout elsewhere).
  const say = (text, heldId = null) => {
    messageError.textContent = '';
    if (heldId) messageInfo.dataset.ticketId = heldId;
    else delete messageInfo.dataset.ticketId;
    announce(messageInfo, text);
  };
  const complain = (text) => { clearInfo(); announce(messageError, text); };
  function clearInfo() {
    messageInfo.textContent = '';
    delete messageInfo.dataset.ticketId;
  }
  function dropStaleHeldMessage() {
    const id = messageInfo.dataset.ticketId;
    if (!id) return;
    const t = seatMap.get(id);
    if (!t || seatMap.view(t) !== 'mine') clearInfo();
  }

  // ---- seat map -------------------------------------------------------------------------------------------
  const pendingActions = new Map(); // ticket_id -> {action, timer, retried}
  const seatMap = new SeatMap(hallBox, {
    label: `Seats for ${event.title}, ${showtime.theater}`,
    onActivate: (t, view) => activate(t, view),
    onMineExpired: (t) => { complain(`Your hold on ${seatName(t)} has expired.`); scheduleCart(); },
    onUnknownTicket: () => requestResync(),
  });
  // Drops a ticket_status update overtaken by a later one of the same ticket (see UpdateOrder).
  const order = new UpdateOrder();
  const forShowtime = (list) => (list || []).filter((t) => !t.showtime_id || String(t.showtime_id) === String(showtimeId));

  async function loadListing(since = null) {
    const listing = await api.tickets(eventId, { date: showtime.date, theater: showtime.theater }, { signal: ctx.signal });
    seatMap.load(forShowtime(listing.results), since);
    order.reset();
    showPrices(listing.results);
    updateScrollHint();
  }

  function showPrices(list) {
    const mine = forShowtime(list);
    const amounts = [...new Set(mine.map((t) => t.price).filter(Boolean))].sort((a, b) => Number(a) - Number(b));
    const currency = mine.find((t) => t.currency)?.currency || '';
    if (!amounts.length) prices.textContent = '';
    else if (amounts.length === 1) prices.textContent = `Price per seat: ${money(amounts[0], currency)}`;
    else prices.textContent = `Prices per seat: ${money(amounts[0], currency)} to ${money(amounts.at(-1), currency)} (each seat names its price)`;
  }

  function updateScrollHint() {
    const hidden = hallBox.scrollWidth - hallBox.clientWidth;
    hallBox.dataset.overflow = hidden > 1 ? 'true' : 'false';
    scrollHint.hidden = hidden <= 1;
    scrollHint.textContent = hidden > 1 ? 'The hall is wider than the screen: scroll it sideways to see every seat. →' : '';
  }
  const resizeObserver = new ResizeObserver(() => updateScrollHint());
  resizeObserver.observe(hallBox);
  try {
    await loadListing();
  } catch (err) {
    if (isAbort(err)) return;
    append(hallBox, errorNotice(err));
  }

  function send(action, t, retried = false) {
    const message = { action, ticket_id: t.id };
    if (admission && action === 'select') message.admission = admission.token;
    if (!live || !live.send(message)) {
      complain('The live connection is down, so seats cannot change right now. It reconnects by itself.');
      return;
    }
    seatMap.setPending(t.id, true);
    const entry = pendingActions.get(t.id);
    if (entry) clearTimeout(entry.timer);
    pendingActions.set(t.id, {
      action,
      retried,
      timer: setTimeout(() => {
        pendingActions.delete(t.id);
        seatMap.setPending(t.id, false);
        complain(`No answer from the server about ${seatName(t)}. Please try again.`);
        requestResync();
      }, PENDING_TIMEOUT_MS),
    });
  }

  function settle(id) {
    const entry = pendingActions.get(String(id));
    if (entry) clearTimeout(entry.timer);
    pendingActions.delete(String(id));
    seatMap.setPending(id, false);
    return entry;
  }

  function activate(t, view) {
    if (!loggedIn) {
      complain('Log in to choose seats.');
      return;
    }
    if (seatMap.isPending(t.id)) return;
    if (view === 'available') send('select', t);
    else if (view === 'mine') send('unselect', t);
    else if (view === 'held') complain(`${seatName(t)} is held by another customer.`);
    else if (view === 'sold') complain(t.mine ? `${seatName(t)} is already yours.` : `${seatName(t)} is sold.`);
  }

  // The turn a waiting room gave has ended: forget it and offer the queue again (at its back).
  function offerRequeue() {
    admission = null;
    keepAdmission(showtimeId, null);
    if (document.getElementById('queue-rejoin')) return;
    const again = h('button', { type: 'button', id: 'queue-rejoin', class: 'secondary' }, 'Join the queue again');
    again.addEventListener('click', () => ctx.reload());
    messageError.after(h('p', {}, again));
  }

  // ---- cart -----------------------------------------------------------------------------------------------
  function scheduleCart(delay = 150) {
    if (!loggedIn) return;
    clearTimeout(cartTimer);
    cartTimer = setTimeout(refreshCart, delay);
  }

  async function refreshCart() {
    const generation = ++cartGeneration;
    try {
      const next = await api.cart(showtimeId, { signal: ctx.signal });
      if (generation !== cartGeneration) return;
      cart = next;
      renderCart();
    } catch (err) {
      if (isAbort(err) || generation !== cartGeneration) return;
      fill(cartBody, errorNotice(err));
      payButton.disabled = true;
    }
  }

  function renderCart() {
    clear(cartBody);
    if (!loggedIn) {
      append(cartBody, h('p', {}, 'Log in to hold seats.'));
      return;
    }
    const tickets = cart?.tickets || [];
    renderCartBar(tickets);
    if (!tickets.length) {
      append(cartBody, h('p', { class: 'cart-empty' }, 'No seats held yet. Pick your seats on the map.'));
      payButton.disabled = true;
      dropStaleHeldMessage();
      if (messageInfo.dataset.ticketId) clearInfo(); // the server says nothing is held: no "held for you" beside it
      return;
    }
    append(cartBody, 
      h('ul', { class: 'cart-items' }, tickets.map((t) => {
        const release = h('button', { type: 'button', class: 'link-button', 'aria-label': `Release ${seatName(t)}` }, 'Release');
        release.addEventListener('click', () => {
          const known = seatMap.get(t.ticket_id);
          if (known) activate(known, seatMap.view(known));
        });
        return h('li', { 'data-ticket-id': t.ticket_id },
          h('span', { class: 'cart-seat' }, seatName(t)),
          h('span', { class: 'cart-price' }, money(t.price, t.currency || cart.currency)),
          release);
      })),
      h('p', { class: 'cart-total' }, 'Total: ', h('strong', { id: 'cart-total', 'data-total': cart.total }, money(cart.total, cart.currency))),
      h('p', { class: 'cart-expiry', id: 'cart-expiry' }),
    );
    payButton.disabled = false;
    barPay.disabled = false;
    updateCartExpiry();
  }

  function renderCartBar(tickets) {
    cartBar.hidden = !tickets.length;
    barPay.disabled = payButton.disabled || !tickets.length;
    if (!tickets.length) return;
    const n = tickets.length;
    fill(barSummary, h('strong', {}, `${n} seat${n === 1 ? '' : 's'}: ${tickets.map(seatName).join(', ')}`), ' · Total ',
      h('strong', { id: 'cart-bar-total' }, money(cart.total, cart.currency)), ' ', h('span', { id: 'cart-bar-expiry' }));
  }

  function updateCartExpiry() {
    const el = cartBody.querySelector('#cart-expiry');
    const barEl = cartBar.querySelector('#cart-bar-expiry');
    if (!el) return;
    const mine = seatMap.mine();
    const expiresAt = mine[0]?.expiresAt ?? parseTime(cart?.expires_at);
    el.textContent = expiresAt ? `Held for you until ${formatTime(expiresAt)} (${countdown(expiresAt - Date.now())} left).` : '';
    if (barEl) barEl.textContent = expiresAt ? `· ${countdown(expiresAt - Date.now())} left` : '';
  }

  payButton.addEventListener('click', async () => {
    payButton.disabled = true;
    payStatus.textContent = 'Creating your PayPal order…';
    try {
      const order = await api.createPayment(showtimeId, { signal: ctx.signal });
      sessionStorage.setItem(CHECKOUT_KEY, JSON.stringify({
        order_id: order.order_id,
        paypal_order_id: order.paypal_order_id,
        approval_url: order.approval_url,
        event_id: eventId,
        showtime_id: showtimeId,
        title: event.title,
      }));
      payStatus.textContent = `Taking you to PayPal to pay ${money(order.amount, order.currency)}…`;
      live?.stop();
      window.location.assign(order.approval_url);
    } catch (err) {
      if (isAbort(err)) return;
      payStatus.textContent = err.message;
      payButton.disabled = false;
      scheduleCart(0);
    }
  });

  // ---- live connection ------------------------------------------------------------------------------------

  function forgetSnapshotRequests() {
    snapshots.outstanding = 0;
    snapshots.since = null;
    clearTimeout(snapshotTimer);
  }

  function requestResync() {
    if (!live?.send({ action: 'snapshot' })) return;
    snapshots.outstanding += 1;
    snapshots.since ??= seatMap.version;
    clearTimeout(snapshotTimer);
    // If no snapshot comes back, the REST listing re-syncs us instead.
    snapshotTimer = setTimeout(() => {
      forgetSnapshotRequests();
      loadListing(seatMap.version).catch(() => {});
      scheduleCart(0);
    }, SNAPSHOT_TIMEOUT_MS);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case 'snapshot':
        // None outstanding: a late answer to requests given up on (the REST listing re-synced us since).
        if (snapshots.outstanding === 0) break;
        seatMap.load(forShowtime(msg.tickets), snapshots.since);
        order.reset();
        snapshots.outstanding -= 1;
        if (snapshots.outstanding === 0) forgetSnapshotRequests();
        scheduleCart();
        break;
      case 'ticket_status': {
        const changed = seatMap.applyUpdates(order.fresh(msg.updates));
        const cartIds = new Set((cart?.tickets || []).map((t) => String(t.ticket_id)));
        if (changed.some((t) => t.mine || cartIds.has(t.id))) scheduleCart();
        break;
      }
      case 'selected': {
        settle(msg.ticket_id);
        const t = seatMap.markMine(msg.ticket_id, msg.expires_at);
        if (t) {
          const until = parseTime(msg.expires_at);
          say(`${seatName(t)} is held for you${until ? ` until ${formatTime(until)}` : ''}.`, t.id);
        }
        scheduleCart(0);
        break;
      }
      case 'unselected': {
        settle(msg.ticket_id);
        const t = seatMap.unmarkMine(msg.ticket_id);
        if (t) say(`${seatName(t)} released.`);
        scheduleCart(0);
        break;
      }
      case 'error': {
        const entry = msg.ticket_id ? settle(msg.ticket_id) : null;
        const t = msg.ticket_id ? seatMap.get(msg.ticket_id) : null;
        if (msg.code === 'busy' && t && entry && !entry.retried) {
          // The contract lets the client retry a collision: once, after a short random pause.
          setTimeout(() => send(entry.action, t, true), 200 + Math.random() * 400);
          break;
        }
        complain(errorText(msg.code, t ? seatName(t) : 'That seat', msg.message, msg.retry_after));
        if (msg.code?.startsWith('admission_')) offerRequeue();
        if (['ticket_unavailable', 'not_holder', 'checkout_in_progress', 'not_found'].includes(msg.code)) requestResync();
        break;
      }
      default:
        break;
    }
  }

  function onState(state, info = {}) {
    const dropped = state === 'reconnecting' || (state === 'connecting' && info.reconnect);
    if (dropped && !lostShown) {
      quietLoss = { state, info };
      graceTimer ??= setTimeout(() => {
        graceTimer = null;
        showState(quietLoss.state, quietLoss.info);
      }, LOST_GRACE_MS);
      return;
    }
    clearTimeout(graceTimer);
    graceTimer = null;
    showState(state, info);
  }

  function showState(state, info) {
    liveBadge.dataset.state = state;
    banner.dataset.state = state;
    const lost = state === 'reconnecting' || state === 'unauthenticated' || (state === 'connecting' && info.reconnect);
    const wasLost = lostShown;
    lostShown = lost;
    hallBox.dataset.live = lost ? 'off' : 'on';
    clearTimeout(restoredTimer);
    if (state === 'open') {
      liveBadge.textContent = 'Live';
      retryAt = null;
      // Snapshots asked for on an earlier socket will not come, and updates may have been missed meanwhile:
      // this one is measured from now, so it corrects every seat.
      forgetSnapshotRequests();
      requestResync();
      scheduleCart(0);
      if (info.reconnect && wasLost) {
        banner.hidden = false;
        banner.dataset.state = 'restored';
        fill(banner, h('p', {}, 'Live connection restored. Seats are up to date.'));
        restoredTimer = setTimeout(() => { banner.hidden = true; }, 4_000);
      } else {
        banner.hidden = true;
      }
    } else if (state === 'connecting') {
      liveBadge.textContent = info.reconnect ? 'Reconnecting…' : 'Connecting…';
      if (info.reconnect) showLost('Reconnecting to live seat updates…');
    } else if (state === 'reconnecting') {
      liveBadge.textContent = 'Offline';
      retryAt = info.retryAt;
      showLost('Live connection lost. Seat changes are paused until it is back.');
    } else if (state === 'unauthenticated') {
      liveBadge.textContent = 'Not live';
      banner.hidden = false;
      fill(banner, h('p', {}, 'Your session has expired, so seats are not updated live. '),
        loginLinkHere());
    }
  }

  function loginLinkHere() {
    return h('a', { href: `#/login?next=${encodeURIComponent(here)}` }, 'Log in again');
  }

  function showLost(text) {
    banner.hidden = false;
    // The banner swings between connecting and reconnecting while offline: keep its button (a rebuilt one
    // would drop keyboard focus, and a click landing on the old one would be lost) and change the text only.
    let line = banner.querySelector('.conn-lost');
    if (!line || !banner.querySelector('.conn-now')) {
      line = h('span', { class: 'conn-lost' });
      const wait = h('span', { class: 'conn-wait', 'aria-hidden': 'true' });
      const now = h('button', { type: 'button', class: 'secondary small conn-now' }, 'Reconnect now');
      now.addEventListener('click', () => live?.reconnectNow());
      fill(banner, h('p', {}, line, ' ', wait), now);
    }
    line.textContent = text;
    updateBannerWait();
  }

  function updateBannerWait() {
    const wait = banner.querySelector('.conn-wait');
    if (!wait) return;
    wait.textContent = retryAt && retryAt > Date.now() && banner.dataset.state === 'reconnecting'
      ? `Next try in ${Math.ceil((retryAt - Date.now()) / 1000)} s.`
      : '';
  }

  if (loggedIn) {
    live = new LiveConnection({ urlFactory: () => liveUrl(showtimeId), onMessage, onState });
    live.start();
    refreshCart();
  }
  renderCart();

  const ticker = setInterval(() => {
    seatMap.tick();
    dropStaleHeldMessage();
    updateCartExpiry();
    updateBannerWait();
  }, 1_000);

  // Back from the bfcache (e.g. the browser's Back button from PayPal): re-sync everything.
  const onPageShow = (event) => {
    if (!event.persisted) return;
    payButton.disabled = !(cart?.tickets || []).length;
    payStatus.textContent = '';
    live?.start(); // stopped when we left for PayPal; its 'open' re-syncs from a snapshot
    requestResync();
    scheduleCart(0);
  };
  window.addEventListener('pageshow', onPageShow);

  ctx.onCleanup(() => {
    clearInterval(ticker);
    clearTimeout(cartTimer);
    clearTimeout(snapshotTimer);
    clearTimeout(restoredTimer);
    clearTimeout(graceTimer);
    for (const entry of pendingActions.values()) clearTimeout(entry.timer);
    window.removeEventListener('pageshow', onPageShow);
    resizeObserver.disconnect();
    live?.stop();
  });
}

function legend() {
  const item = (status, text) => h('li', {},
    h('span', { class: 'seat seat-sample', 'data-status': status, 'aria-hidden': 'true' },
      h('span', { class: 'seat-num' }, ''), h('span', { class: 'seat-mark' })),
    ` ${text}`);
  return h('ul', { class: 'legend', 'aria-label': 'Legend' },
    item('available', 'Available'),
    item('mine', 'Held by you'),
    item('held', 'Held by someone else'),
    item('sold', 'Sold'));
}
