// The pages PayPal (or the local emulator) sends the buyer back to: /paypal/return and /paypal/cancel.
// A redirect carries no bearer token, so these pages call execute / cancel with the tab's session.

import { api, session } from '../api.js';
import { h, clear, isAbort, money, seatName, sleep, append, fill } from '../util.js';
import {
  CHECKOUT_KEY, errorNotice, heading, notice, orderStatusLine, orderTitle, savedCheckout, showingText,
} from '../ui.js';
import { authForm } from './auth.js';

const POLL_LIMIT_MS = 180_000;

function seatsLink(checkout) {
  if (!checkout?.event_id || !checkout?.showtime_id) return null;
  return h('a', {
    href: `#/events/${encodeURIComponent(checkout.event_id)}/showtimes/${encodeURIComponent(checkout.showtime_id)}`,
  }, 'Back to the seat map');
}

function needLogin(ctx, box, text) {
  append(box, notice(text), authForm('login', () => ctx.reload()));
}

/** Polls GET /api/orders/{id}/ while `keepGoing(order)`; calls render(order) on each answer. */
export async function pollOrder(orderId, { signal, keepGoing, render, first }) {
  let order = first;
  const started = Date.now();
  let delay = 500;
  while (keepGoing(order) && Date.now() - started < POLL_LIMIT_MS) {
    await sleep(delay, signal);
    delay = Math.min(2_000, delay * 1.5);
    try {
      order = await api.order(orderId, { signal });
      render(order);
    } catch (err) {
      if (isAbort(err)) throw err;
      // A transient failure: keep polling; a lasting one ends with the time limit.
    }
  }
  return order;
}

export async function viewPaypalReturn(ctx, _params, query) {
  ctx.setTitle('Payment');
  const token = query.get('token');
  const payerId = query.get('PayerID');
  const checkout = savedCheckout();
  const box = h('div', { class: 'payment' });
  append(ctx.main, heading('Payment'), box);
  if (!token) {
    append(box, errorNotice({ message: 'This address is missing the token PayPal adds to it, so there is nothing to confirm.' }));
    return;
  }
  if (!session.loggedIn) {
    needLogin(ctx, box, 'Your session in this tab has ended. Log in to finish the payment.');
    return;
  }
  const statusSlot = h('div', { class: 'status-slot' },
    h('p', { id: 'order-status', class: 'order-status', 'data-status': 'confirming', role: 'status' }, 'Confirming your payment with PayPal…'));
  const details = h('div', { class: 'order-details' });
  append(box, statusSlot, details);

  let result;
  try {
    result = await api.executePayment({ token, PayerID: payerId }, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    const sameOrder = checkout && checkout.paypal_order_id === token;
    const again = (err.code === 'order_not_approved' || err.code === 'payment_declined') && sameOrder && checkout.approval_url
      ? h('p', {}, h('a', { href: checkout.approval_url, class: 'button-link' }, 'Approve the payment at PayPal again'))
      : null;
    fill(statusSlot, 
      h('p', { id: 'order-status', class: 'order-status', 'data-status': 'error', 'data-code': err.code, role: 'alert' }, err.message),
      again,
      h('p', { class: 'actions' }, seatsLink(sameOrder ? checkout : null), ' ', h('a', { href: '#/orders' }, 'My orders')));
    return;
  }

  const render = (order) => {
    fill(statusSlot, orderStatusLine(order.status, 'order-status', order.cancel_reason));
    renderDetails(details, order, checkout);
  };
  render(result);
  try {
    let order = result;
    if (result.order_id) {
      order = await api.order(result.order_id, { signal: ctx.signal }).catch((err) => {
        if (isAbort(err)) throw err;
        return result;
      });
      render(order);
      order = await pollOrder(result.order_id, {
        signal: ctx.signal, first: order, render, keepGoing: (o) => o.status === 'processing',
      });
    }
    if (order.status === 'paid' && checkout?.paypal_order_id === token) sessionStorage.removeItem(CHECKOUT_KEY);
    if (order.status === 'processing') {
      append(statusSlot, notice('This is taking longer than usual. Your order page will show the result.'));
    }
  } catch (err) {
    if (!isAbort(err)) append(statusSlot, errorNotice(err));
  }
}

function renderDetails(details, order, checkout) {
  clear(details);
  // Execute's own answer has only the id and status: the title waits for the order itself.
  if (order.event_title || order.starts_at) {
    const showing = showingText(order);
    append(details, h('p', { class: 'order-what' }, h('strong', {}, orderTitle(order)), showing ? ` · ${showing}` : ''));
  }
  const tickets = order.tickets || [];
  if (tickets.length) {
    append(details, h('h2', {}, 'Tickets'),
      h('ul', { class: 'ticket-list' }, tickets.map((t) => h('li', {}, `${seatName(t)} · ${money(t.price, t.currency || order.currency)}`))));
  }
  if (order.amount) append(details, h('p', {}, 'Amount: ', h('strong', {}, money(order.amount, order.currency))));
  const failedReason = order.failure_reason || (order.refunds || []).map((r) => r.reason).filter(Boolean)[0];
  if (order.status === 'failed' && failedReason) append(details, h('p', {}, `Reason: ${failedReason}`));
  append(details, h('p', { class: 'actions' },
    order.order_id ? h('a', { href: `#/orders/${encodeURIComponent(order.order_id)}` }, 'View this order') : null, ' ',
    order.status === 'paid' ? h('a', { href: '#/events' }, 'Browse more events') : seatsLink(checkout)));
}

export async function viewPaypalCancel(ctx, _params, query) {
  ctx.setTitle('Payment cancelled');
  const token = query.get('token');
  const checkout = savedCheckout();
  const box = h('div', { class: 'payment' });
  append(ctx.main, heading('Payment cancelled'), box);
  if (!token) {
    append(box, errorNotice({ message: 'This address is missing the token PayPal adds to it.' }));
    return;
  }
  if (!session.loggedIn) {
    needLogin(ctx, box, 'Your session in this tab has ended. Log in to release the payment.');
    return;
  }
  append(box, h('p', { id: 'order-status', class: 'order-status', 'data-status': 'cancelling', role: 'status' }, 'Cancelling the payment…'));
  const sameOrder = checkout && checkout.paypal_order_id === token ? checkout : null;
  try {
    const result = await api.cancelPayment(token, { signal: ctx.signal });
    if (sameOrder) sessionStorage.removeItem(CHECKOUT_KEY);
    fill(box, 
      orderStatusLine(result.status || 'cancelled', 'order-status', 'buyer'),
      h('p', {}, 'Your seats stay held for you until their hold runs out, so you can pay again.'),
      h('p', { class: 'actions' }, seatsLink(sameOrder), ' ', h('a', { href: '#/orders' }, 'My orders')));
  } catch (err) {
    if (isAbort(err)) return;
    fill(box, 
      h('p', { id: 'order-status', class: 'order-status', 'data-status': 'error', 'data-code': err.code, role: 'alert' }, err.message),
      h('p', { class: 'actions' }, seatsLink(sameOrder), ' ', h('a', { href: '#/orders' }, 'My orders')));
  }
}
