// Pieces shared by the views.

import { append, fill, formatDateTime, h, isAbort } from './util.js';

export function heading(text, level = 1) {
  // tabindex=-1: the router moves focus here after a navigation, so screen readers hear the new page.
  return h(`h${level}`, { class: level === 1 ? 'page-title' : null, tabindex: level === 1 ? '-1' : null }, text);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

export function errorNotice(err, extra) {
  const message = err?.message || 'Something went wrong.';
  return h('div', { class: 'notice notice-error', role: 'alert', 'data-code': err?.code || 'error' },
    h('p', {}, message), extra || null);
}

export function notice(text, kind = 'info', extra) {
  return h('div', { class: `notice notice-${kind}`, role: 'status' }, h('p', {}, text), extra || null);
}

export function loginLink(next, text = 'Log in') {
  return h('a', { href: `#/login?next=${encodeURIComponent(next)}`, class: 'button-link' }, text);
}

export function loginPrompt(text, next) {
  return h('div', { class: 'notice notice-info', role: 'status' },
    h('p', {}, text),
    h('p', { class: 'actions' }, loginLink(next), ' ',
      h('a', { href: `#/register?next=${encodeURIComponent(next)}` }, 'Create an account')));
}

// The API's statuses are for programs; a buyer reads these (data-status keeps the API's word for styling and tests).
export const ORDER_STATUS_LABEL = {
  created: 'Awaiting payment',
  processing: 'Confirming payment',
  paid: 'Paid',
  failed: 'Payment failed',
  cancelled: 'Cancelled',
  expired: 'Not paid in time',
  refund_pending: 'Refund in progress',
  partially_refunded: 'Partly refunded',
  refunded: 'Refunded',
  reversed: 'Payment reversed',
};

export const ORDER_STATUS_TEXT = {
  created: 'Waiting for your approval at PayPal.',
  processing: 'Payment received, confirming your seats…',
  paid: 'Your tickets are paid for and booked.',
  failed: 'The payment did not go through, or the seats could not be secured (any capture is refunded).',
  cancelled: 'No payment was taken.',
  expired: 'The payment window closed before the payment was made. Nothing was charged.',
  refund_pending: 'A refund is being processed…',
  partially_refunded: 'Some tickets were refunded; the others are still yours.',
  refunded: 'All tickets were refunded.',
  reversed: 'The payment was taken back through PayPal, so these tickets are no longer valid.',
};

// Why a cancelled order ended (the API's `cancel_reason`); older cancelled orders carry none.
const CANCELLED_LABEL = { replaced: 'Replaced by a later checkout' };
const CANCELLED_TEXT = {
  buyer: 'You cancelled the payment at PayPal. Nothing was charged.',
  replaced: 'You started a new checkout for this showtime, so this unpaid one was closed and its seats moved to '
    + 'the newer order. Nothing was charged for this one.',
  payment_not_created: 'PayPal could not start this payment. Nothing was charged.',
};

/** The status as a buyer says it: "Awaiting payment", not "created". */
export function orderStatusLabel(status, cancelReason) {
  if (status === 'cancelled' && CANCELLED_LABEL[cancelReason]) return CANCELLED_LABEL[cancelReason];
  return ORDER_STATUS_LABEL[status] || String(status || 'unknown').replace(/_/g, ' ');
}

/** A status chip: the buyer's words, the API's status in data-status. */
export function statusChip(status, cancelReason, tag = 'span') {
  return h(tag, { class: 'status-chip', 'data-status': status || 'unknown', 'data-reason': cancelReason || null },
    orderStatusLabel(status, cancelReason));
}

/** The `#order-status` line: data-status carries the raw status for tests and styling. */
export function orderStatusLine(status, id = 'order-status', cancelReason = null) {
  const text = (status === 'cancelled' && CANCELLED_TEXT[cancelReason]) || ORDER_STATUS_TEXT[status] || '';
  return h('p', { id, class: 'order-status', 'data-status': status || 'unknown', role: 'status' },
    'Status: ', statusChip(status, cancelReason, 'strong'), text ? ` ${text}` : '');
}

/** What an order bought, in words: its event's title, or the order's short id for orders that predate titles. */
export function orderTitle(order) {
  return order.event_title || `Order ${String(order.order_id || '').slice(0, 8)}`;
}

/** "Sat 5 Dec, 19:30 · Hall 1": when and where the showing is ('' when the order does not say). */
export function showingText(order) {
  return [order.starts_at ? formatDateTime(order.starts_at) : '', order.theater || ''].filter(Boolean).join(' · ');
}

/** Announces text in a live region, even when it repeats the previous message. */
export function announce(region, text) {
  region.textContent = '';
  if (text) requestAnimationFrame(() => { region.textContent = text; });
}

export const CHECKOUT_KEY = 'tickets.checkout';

export function savedCheckout() {
  try {
    return JSON.parse(sessionStorage.getItem(CHECKOUT_KEY) || 'null');
  } catch {
    return null;
  }
}

/**
 * A cursor-paginated list with a "load more" button: loads the first page now and each next page on click,
 * keeping keyboard focus where the new items start. `fetchPage(cursor)` returns `{results, next}`;
 * `summary(count, hasMore)` is the status text after each page.
 */
export async function pagedList({ list, status, more, fetchPage, render, loadingText, summary }) {
  let cursor = null;
  async function loadPage() {
    more.disabled = true;
    list.setAttribute('aria-busy', 'true');
    status.textContent = loadingText;
    try {
      const page = await fetchPage(cursor);
      for (const item of page.results || []) append(list, render(item));
      cursor = page.next || null;
      more.hidden = !cursor;
      status.textContent = summary(list.children.length, Boolean(cursor));
    } catch (err) {
      if (isAbort(err)) return;
      fill(status, errorNotice(err));
    } finally {
      more.disabled = false;
      list.setAttribute('aria-busy', 'false');
    }
  }
  more.addEventListener('click', async () => {
    const before = list.children.length;
    await loadPage();
    list.children[before]?.querySelector('a')?.focus();
  });
  await loadPage();
}
