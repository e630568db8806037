// My orders: the list, one order with its tickets, and refunds (single tickets or the whole order).

import { api, session } from '../api.js';
import { h, formatDateTime, isAbort, money, seatName, append, fill } from '../util.js';
import {
  errorNotice, heading, loading, loginPrompt, orderStatusLabel, orderStatusLine, orderTitle, pagedList, showingText,
  statusChip,
} from '../ui.js';
import { pollOrder } from './payment.js';

const REFUNDABLE = new Set(['paid', 'partially_refunded']);
const BUSY = new Set(['processing', 'refund_pending']);
// Orders whose tickets still hold: their receipt can be emailed again (POST /api/orders/{id}/resend/).
const RESENDABLE = new Set(['paid', 'partially_refunded', 'refund_pending']);

const shortId = (id) => String(id).slice(0, 8);
const REFUND_STATUS_LABEL = { pending: 'In progress', completed: 'Refunded', failed: 'Failed' };

export async function viewOrders(ctx) {
  ctx.setTitle('My orders');
  append(ctx.main, heading('My orders'));
  if (!session.loggedIn) {
    append(ctx.main, loginPrompt('Log in to see your orders.', '#/orders'));
    return;
  }
  const list = h('ul', { class: 'order-list', 'aria-busy': 'true' });
  const status = h('p', { class: 'list-status', role: 'status' });
  const more = h('button', { type: 'button', class: 'secondary load-more', hidden: true }, 'Load more orders');
  append(ctx.main, list, status, more);
  await pagedList({
    list,
    status,
    more,
    fetchPage: (cursor) => api.orders({ cursor }, { signal: ctx.signal }),
    render: orderItem,
    loadingText: 'Loading orders…',
    summary: (count) => (count ? '' : 'You have no orders yet.'),
  });
}

/** "Row D seat 5, Row D seat 6": which seats, so two orders of one showtime can be told apart. */
function seatsText(order) {
  return (order.tickets || []).map(seatName).join(', ');
}

function orderItem(order) {
  const showing = showingText(order);
  const seats = seatsText(order);
  return h('li', { class: 'order-item', 'data-order-id': order.order_id, 'data-status': order.status },
    h('a', { href: `#/orders/${encodeURIComponent(order.order_id)}`, class: 'order-title' }, orderTitle(order)),
    statusChip(order.status, order.cancel_reason),
    showing ? h('span', { class: 'order-showing' }, showing) : null,
    seats ? h('span', { class: 'order-seats' }, seats) : null,
    h('span', { class: 'order-amount' }, money(order.amount, order.currency)),
    order.created_at ? h('span', { class: 'order-date' }, `ordered ${formatDateTime(order.created_at)}`) : null);
}

/** Tickets of this order that can still be refunded (not already refunded or being refunded). */
export function refundableTickets(order) {
  if (!REFUNDABLE.has(order.status)) return new Set();
  const taken = new Set((order.refunded_ticket_ids || []).map(String));
  for (const refund of order.refunds || []) {
    if (refund.status === 'failed') continue;
    for (const id of refund.ticket_ids || []) taken.add(String(id));
  }
  const ids = new Set();
  for (const t of order.tickets || []) {
    const id = String(t.ticket_id);
    const released = t.refunded === true || t.status === 'refunded' || t.status === 'available' || t.mine === false;
    if (!released && !taken.has(id)) ids.add(id);
  }
  return ids;
}

// Orders whose seats are (or were) e-tickets.
const ETICKET_STATUSES = new Set(['paid', 'partially_refunded', 'refund_pending', 'refunded', 'reversed']);
const ETICKET_NOTE = {
  refunded: 'Refunded: this ticket is no longer valid.',
  void: 'Voided (the payment was taken back): this ticket is not valid.',
  not_issued: 'No ticket: the order is not paid.',
};

function eticketsSection(t) {
  const valid = t.results.filter((x) => x.status === 'valid');
  return h('section', { 'aria-labelledby': 'etickets-heading', class: 'etickets' },
    h('h2', { id: 'etickets-heading' }, 'Your e-tickets'),
    valid.length
      ? h('p', { class: 'hint' }, `Show each code at the door${t.valid_from ? ` from ${formatDateTime(t.valid_from)}` : ''}. `
        + 'Each code lets one person in once; the door can check it without a network.')
      : null,
    h('ul', { class: 'eticket-list' }, t.results.map((x) => h('li', { class: 'eticket', 'data-ticket-id': x.ticket_id, 'data-status': x.status },
      h('p', { class: 'eticket-seat' }, h('strong', {}, x.label)),
      x.status === 'valid'
        ? [h('img', { src: x.qr_svg, alt: `QR code of the ticket for ${x.label}`, class: 'eticket-qr', width: '196', height: '196' }),
          h('details', {}, h('summary', {}, 'Show the code as text'), h('p', { class: 'mono eticket-code' }, x.code))]
        : h('p', { class: 'eticket-note' }, ETICKET_NOTE[x.status] || x.status)))));
}

export async function viewOrder(ctx, params) {
  const orderId = params[0];
  ctx.setTitle(`Order ${shortId(orderId)}`);  // until the order says what it bought
  if (!session.loggedIn) {
    append(ctx.main, heading('Order'), loginPrompt('Log in to see this order.', `#/orders/${encodeURIComponent(orderId)}`));
    return;
  }
  append(ctx.main, loading('Loading order…'));
  let order;
  try {
    order = await api.order(orderId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    fill(ctx.main, heading('Order'), errorNotice(err), h('p', {}, h('a', { href: '#/orders' }, 'All my orders')));
    return;
  }

  const statusSlot = h('div', { class: 'status-slot' });
  const ticketsSlot = h('div', { class: 'tickets-slot', id: 'etickets' });
  const body = h('div', { class: 'order-body' });
  const refundMessage = h('p', { id: 'refund-message', class: 'refund-message', 'aria-live': 'polite' });
  // Kept across re-renders (polling), so "on its way" stays until the buyer leaves.
  const resendMessage = h('span', { id: 'resend-message', class: 'resend-message', 'aria-live': 'polite' });
  ctx.setTitle(orderTitle(order));
  fill(ctx.main, 
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/orders' }, '← My orders')),
    heading(orderTitle(order)),
    statusSlot, refundMessage, body, ticketsSlot);

  let polling = false;
  let ticketsFor = null; // the order status the e-tickets shown were read at
  const render = (o) => {
    order = o;
    fill(statusSlot, orderStatusLine(o.status, 'order-status', o.cancel_reason));
    renderBody(o);
    if (ETICKET_STATUSES.has(o.status) && ticketsFor !== o.status) {
      ticketsFor = o.status;
      loadETickets(o.order_id || orderId);
    }
  };

  // The e-tickets: a QR code per valid seat (GET /api/orders/{id}/tickets/), read again when the order changes.
  async function loadETickets(id) {
    try {
      const t = await api.orderTickets(id, { signal: ctx.signal });
      fill(ticketsSlot, eticketsSection(t));
    } catch (err) {
      if (isAbort(err)) return;
      fill(ticketsSlot, h('section', { 'aria-labelledby': 'etickets-heading', class: 'etickets' },
        h('h2', { id: 'etickets-heading' }, 'Your e-tickets'), errorNotice(err)));
    }
  }

  function renderBody(o) {
    const refundable = refundableTickets(o);
    const busy = BUSY.has(o.status) || polling;
    const checkboxes = [];
    const selectedButton = h('button', { type: 'button', class: 'secondary', id: 'refund-selected', disabled: true }, 'Refund selected tickets');
    const allButton = h('button', { type: 'button', class: 'danger', id: 'refund-all', disabled: busy || refundable.size === 0 }, 'Refund the whole order');
    const syncButtons = () => {
      selectedButton.disabled = busy || !checkboxes.some((c) => c.checked);
    };
    const items = (o.tickets || []).map((t) => {
      const id = String(t.ticket_id);
      const price = money(t.price, t.currency || o.currency);
      if (!refundable.has(id)) {
        const note = REFUNDABLE.has(o.status) || o.status === 'refunded' ? ' · refunded' : '';
        return h('li', { 'data-ticket-id': id }, `${seatName(t)} · ${price}${note}`);
      }
      const box = h('input', { type: 'checkbox', id: `refund-${id}`, value: id, 'data-ticket-id': id, disabled: busy });
      box.addEventListener('change', syncButtons);
      checkboxes.push(box);
      return h('li', { 'data-ticket-id': id }, box, ' ', h('label', { for: box.id }, `${seatName(t)} · ${price}`));
    });
    async function refund(ticketIds) {
      selectedButton.disabled = true;
      allButton.disabled = true;
      refundMessage.textContent = 'Asking for the refund…';
      try {
        const r = await api.refund(o.order_id || orderId, ticketIds, { signal: ctx.signal });
        refundMessage.textContent = `Refund of ${money(r.amount, r.currency)} requested. It is being processed…`;
        await follow({ ...o, status: 'refund_pending' });
        refundMessage.textContent = order.status === 'refund_pending'
          ? 'The refund is still being processed. Check this page again later.'
          : `Refund finished: the order is now ${orderStatusLabel(order.status).toLowerCase()}.`;
        const failed = (order.refunds || []).find((x) => x.refund_id === r.refund_id && x.status === 'failed');
        if (failed) refundMessage.textContent = `The refund failed${failed.reason ? `: ${failed.reason}` : '.'}`;
      } catch (err) {
        if (isAbort(err)) return;
        refundMessage.textContent = err.message;
        syncButtons();
        allButton.disabled = refundable.size === 0;
      }
    }
    selectedButton.addEventListener('click', () => refund(checkboxes.filter((c) => c.checked).map((c) => c.value)));
    allButton.addEventListener('click', () => refund(null));

    fill(body, 
      h('dl', { class: 'order-facts' },
        o.starts_at ? [h('dt', {}, 'Showing'), h('dd', { class: 'order-starts' }, formatDateTime(o.starts_at))] : null,
        o.theater ? [h('dt', {}, 'Theater'), h('dd', { class: 'order-theater' }, o.theater)] : null,
        h('dt', {}, 'Amount'), h('dd', {}, money(o.amount, o.currency)),
        o.created_at ? [h('dt', {}, 'Ordered'), h('dd', {}, formatDateTime(o.created_at))] : null,
        h('dt', {}, 'Order id'), h('dd', { class: 'mono' }, o.order_id || orderId)),
      h('fieldset', { class: 'order-tickets' },
        h('legend', {}, refundable.size ? 'Tickets (tick the ones to refund)' : 'Tickets'),
        h('ul', {}, items)),
      refundable.size ? h('p', { class: 'actions' }, selectedButton, ' ', allButton) : null,
      resendControl(o),
      o.status === 'created' && o.approval_url
        ? h('p', { class: 'actions' }, h('a', { href: o.approval_url, class: 'button-link' }, 'Continue to PayPal to pay'))
        : null,
      o.failure_reason ? h('p', { class: 'failure-reason' }, `Reason: ${o.failure_reason}`) : null,
      refundsList(o));
  }

  function resendControl(o) {
    if (!RESENDABLE.has(o.status)) return null;
    const button = h('button', { type: 'button', class: 'secondary', id: 'resend-tickets' }, 'Email me my tickets again');
    button.addEventListener('click', async () => {
      button.disabled = true;
      resendMessage.textContent = 'Asking for the email…';
      try {
        await api.resendTickets(o.order_id || orderId, { signal: ctx.signal });
        resendMessage.textContent = 'Your tickets are on their way to your email address.';
      } catch (err) {
        if (isAbort(err)) return;
        resendMessage.textContent = err.message;
        button.disabled = false;
      }
    });
    return h('p', { class: 'actions' }, button, resendMessage);
  }

  async function follow(start) {
    polling = true;
    render(start);
    try {
      const fresh = await api.order(orderId, { signal: ctx.signal });
      polling = BUSY.has(fresh.status) || (fresh.refunds || []).some((r) => r.status === 'pending');
      render(fresh);
      await pollOrder(orderId, {
        signal: ctx.signal,
        first: fresh,
        keepGoing: (x) => BUSY.has(x.status) || (x.refunds || []).some((r) => r.status === 'pending'),
        render: (x) => {
          polling = BUSY.has(x.status) || (x.refunds || []).some((r) => r.status === 'pending');
          render(x);
        },
      });
    } finally {
      polling = false;
      render(order);
    }
  }

  render(order);
  if (BUSY.has(order.status)) follow(order).catch(() => {});
}

function refundsList(o) {
  const refunds = o.refunds || [];
  if (!refunds.length) return null;
  return h('section', { class: 'refunds' },
    h('h2', {}, 'Refunds'),
    h('ul', {}, refunds.map((r) => h('li', { 'data-refund-id': r.refund_id, 'data-status': r.status },
      h('span', { class: 'status-chip', 'data-status': r.status }, REFUND_STATUS_LABEL[r.status] || r.status), ' ',
      money(r.amount, r.currency || o.currency),
      r.reason ? ` · ${r.reason}` : ''))));
}

