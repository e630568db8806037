// Staff: find an order by its buyer's email or its id (or list the disputed / reversed ones) and refund it, the
// whole order or some tickets. The server computes the amount and runs the buyer's own refund path.

import { api } from '../api.js';
import { append, fill, formatDateTime, h, isAbort, money, seatName, sleep } from '../util.js';
import { errorNotice, heading, orderStatusLabel, orderTitle, showingText, statusChip } from '../ui.js';
import { refundableTickets } from './orders.js';
import { field, staffGate, staffNav } from './staff.js';

const FOLLOW_MS = 1_000;
const FOLLOW_TRIES = 30;
const REFUND_STATUS_LABEL = { pending: 'In progress', completed: 'Refunded', failed: 'Failed' };

/** What the search box holds, as the API's query: an email, or an order id. */
function searchQuery(text) {
  const q = text.trim();
  if (!q) return null;
  return q.includes('@') ? { email: q } : { order_id: q };
}

export async function viewStaffOrders(ctx, _params, query) {
  if (!staffGate(ctx, 'Staff: find an order', '#/staff/orders')) return;
  const q = query.get('q') || '';
  const attention = query.get('attention') || '';
  const input = h('input', { name: 'q', type: 'search', required: true, value: q, autocomplete: 'off', spellcheck: 'false' });
  const form = h('form', { class: 'staff-form search-form', role: 'search', 'aria-label': 'Orders' },
    field('Buyer’s email or order id', input, 'An email lists that buyer’s orders, newest first.'),
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Find')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim()) ctx.navigate(`#/staff/orders?q=${encodeURIComponent(input.value.trim())}`);
  });
  const status = h('p', { class: 'list-status', role: 'status', id: 'search-status' });
  const results = h('div', { class: 'staff-orders', id: 'staff-orders' });
  const more = h('button', { type: 'button', class: 'secondary load-more', hidden: true }, 'More orders');
  append(ctx.main, heading('Staff: find an order'), staffNav('orders'), form,
    h('p', { class: 'actions' }, 'Needing attention: ',
      h('a', { href: '#/staff/orders?attention=disputed', 'aria-current': attention === 'disputed' ? 'page' : null }, 'Disputed'),
      h('a', { href: '#/staff/orders?attention=reversed', 'aria-current': attention === 'reversed' ? 'page' : null }, 'Reversed')),
    status, results, more);

  const criteria = attention ? { attention } : searchQuery(q);
  if (!criteria) return;
  let cursor = null;
  async function load() {
    status.textContent = 'Searching…';
    more.disabled = true;
    try {
      const page = await api.staffOrders({ ...criteria, cursor, limit: 20 }, { signal: ctx.signal });
      for (const order of page.results || []) append(results, orderCard(order, ctx));
      cursor = page.next || null;
      more.hidden = !cursor;
      const n = results.children.length;
      status.textContent = n ? `${n} order${n === 1 ? '' : 's'} found.` : 'No orders found.';
    } catch (err) {
      if (isAbort(err)) return;
      status.textContent = '';
      fill(results, errorNotice(err));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', async () => {
    const before = results.children.length;
    await load();
    results.children[before]?.querySelector('h2')?.focus();
  });
  await load();
}

function orderCard(initial, ctx) {
  const card = h('article', { class: 'staff-order', 'data-order-id': initial.order_id, tabindex: '-1' });
  const message = h('p', { class: 'refund-message', 'aria-live': 'polite' });
  let following = false;

  function render(order) {
    card.dataset.status = order.status;
    const headingId = `order-${order.order_id}`;
    card.setAttribute('aria-labelledby', headingId);
    const refundable = following || order.dispute?.status === 'open' ? new Set() : refundableTickets(order);
    const boxes = [];
    const selected = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Refund selected tickets');
    const all = h('button', { type: 'button', class: 'danger' }, 'Refund the whole order');
    const items = (order.tickets || []).map((t) => {
      const id = String(t.ticket_id);
      const text = `${seatName(t)} · ${money(t.price, order.currency)}`;
      if (!refundable.has(id)) {
        const done = (order.refunded_ticket_ids || []).map(String).includes(id);
        return h('li', { 'data-ticket-id': id }, `${text}${done ? ' · refunded' : ''}`);
      }
      const box = h('input', { type: 'checkbox', id: `staff-refund-${order.order_id}-${id}`, value: id, 'data-ticket-id': id });
      box.addEventListener('change', () => { selected.disabled = !boxes.some((b) => b.checked); });
      boxes.push(box);
      return h('li', { 'data-ticket-id': id }, box, ' ', h('label', { for: box.id }, text));
    });
    selected.addEventListener('click', () => refund(order, boxes.filter((b) => b.checked).map((b) => b.value)));
    all.addEventListener('click', () => refund(order, null));
    fill(card,
      h('h2', { id: headingId, tabindex: '-1' }, orderTitle(order)),
      h('dl', { class: 'order-facts' },
        h('dt', {}, 'Status'), h('dd', {}, statusChip(order.status, order.cancel_reason)),
        h('dt', {}, 'Buyer'), h('dd', { class: 'order-buyer' }, order.email || order.user_id),
        h('dt', {}, 'Amount'), h('dd', {}, money(order.amount, order.currency)),
        showingText(order) ? [h('dt', {}, 'Showing'), h('dd', {}, showingText(order))] : null,
        order.created_at ? [h('dt', {}, 'Ordered'), h('dd', {}, formatDateTime(order.created_at))] : null,
        h('dt', {}, 'Order id'), h('dd', { class: 'mono order-id' }, order.order_id),
        order.dispute ? [h('dt', {}, 'Dispute'), h('dd', {}, `${order.dispute.status}${order.dispute.outcome ? `, ${order.dispute.outcome}` : ''}`)] : null),
      h('fieldset', { class: 'order-tickets' },
        h('legend', {}, refundable.size ? 'Tickets (tick the ones to refund)' : 'Tickets'),
        h('ul', {}, items)),
      refundable.size ? h('p', { class: 'actions' }, selected, all) : null,
      message,
      refundsList(order));
  }

  async function refund(order, ticketIds) {
    const what = ticketIds ? `${ticketIds.length} ticket${ticketIds.length === 1 ? '' : 's'}` : 'the whole order';
    following = true;
    render(order);
    message.textContent = `Asking PayPal to refund ${what}…`;
    try {
      const r = await api.staffRefund(order.order_id, ticketIds, { signal: ctx.signal });
      message.textContent = `Refund of ${money(r.amount, r.currency)} requested. It is being processed…`;
      const done = await follow(order.order_id, r.refund_id, ctx.signal);
      following = false;
      render(done.order || order);
      message.textContent = done.refund?.status === 'failed'
        ? `The refund failed${done.refund.reason ? `: ${done.refund.reason}` : '.'}`
        : done.refund?.status === 'completed'
          ? `Refunded ${money(r.amount, r.currency)}: the order is now ${orderStatusLabel(done.order.status).toLowerCase()}.`
          : 'The refund is still being processed. Search again later to see it finish.';
    } catch (err) {
      if (isAbort(err)) return;
      following = false;
      render(order);
      message.textContent = err.message;
    }
  }

  render(initial);
  return card;
}

/** Re-reads the order until its refund has finished (or a while has passed). */
async function follow(orderId, refundId, signal) {
  let order = null;
  for (let i = 0; i < FOLLOW_TRIES; i += 1) {
    await sleep(FOLLOW_MS, signal);
    order = (await api.staffOrders({ order_id: orderId }, { signal })).results?.[0] || order;
    const refund = (order?.refunds || []).find((x) => x.refund_id === refundId);
    if (refund && refund.status !== 'pending') return { order, refund };
  }
  return { order, refund: null };
}

function refundsList(order) {
  const refunds = order.refunds || [];
  if (!refunds.length) return null;
  return h('div', { class: 'refunds' },
    h('h3', {}, 'Refunds'),
    h('ul', {}, refunds.map((r) => h('li', { 'data-refund-id': r.refund_id, 'data-status': r.status },
      h('span', { class: 'status-chip', 'data-status': r.status }, REFUND_STATUS_LABEL[r.status] || r.status), ' ',
      money(r.amount, order.currency),
      r.reason ? ` · ${r.reason}` : ''))));
}
