// Staff: a showtime's on-sale settings and, during the sale, the waiting room's dashboard (waiting, admitted,
// shopping, bought, left; waits; the rate) with pause / resume and a rate change (docs/API.md, "Waiting room").

import { api } from '../api.js';
import { announce, errorNotice } from '../ui.js';
import { formatDateTime, h, isAbort, parseTime } from '../util.js';

const COUNTS = [
  ['waiting', 'Waiting'],
  ['admitted', 'Admitted (total)'],
  ['shopping', 'Shopping now'],
  ['bought', 'Bought'],
  ['left', 'Left'],
  ['lapsed', 'Turn unused'],
  ['vanished', 'Gone before their turn'],
  ['joined', 'Joined (total)'],
];
const REFRESH_MS = 5_000;

/** A datetime-local value ("YYYY-MM-DDTHH:MM", the browser's zone) for an instant. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function seconds(value) {
  if (value === null || value === undefined) return 'none yet';
  return value < 90 ? `${value} s` : `${Math.round(value / 60)} min`;
}

/** The section; it refreshes itself every few seconds until the page goes away. */
export function saleSection(showtimeId, ctx) {
  const status = h('p', { id: 'sale-status', class: 'sale-status', role: 'status' });
  const board = h('dl', { id: 'sale-counts', class: 'occupancy' });
  const waits = h('p', { id: 'sale-waits' });
  const controls = h('p', { class: 'actions' });
  const problem = h('div', {});
  const opensAt = h('input', { type: 'datetime-local', id: 'sale-opens', name: 'on_sale_at', required: true });
  const guarded = h('input', { type: 'checkbox', id: 'sale-guarded', name: 'guarded' });
  const rate = h('input', { type: 'number', id: 'sale-rate', name: 'rate_per_minute', min: '1', max: '100000', value: '60', required: true });
  const cap = h('input', { type: 'number', id: 'sale-cap', name: 'max_shopping', min: '0', max: '100000', value: '0' });
  const save = h('button', { type: 'submit', class: 'primary', id: 'sale-save' }, 'Save on-sale settings');
  const form = h('form', { id: 'sale-form', class: 'staff-form' },
    h('p', {}, h('label', { for: 'sale-opens' }, 'On sale from (your time zone)'), opensAt),
    h('p', {}, guarded, ' ', h('label', { for: 'sale-guarded' }, 'Waiting room: buyers queue, a fair draw at opening, admitted at the rate below')),
    h('p', {}, h('label', { for: 'sale-rate' }, 'Admissions per minute'), rate),
    h('p', {}, h('label', { for: 'sale-cap' }, 'At most this many people picking seats at once (0: no cap)'), cap),
    h('p', {}, save));
  let sale = null;

  function render(s) {
    sale = s;
    if (!s) {
      status.textContent = 'No on-sale settings: the showtime is on sale now, without a waiting room.';
      board.replaceChildren();
      waits.textContent = '';
      controls.replaceChildren();
      return;
    }
    const state = s.paused ? 'paused' : (s.opened ? 'open' : 'not open yet');
    status.textContent = `${s.guarded ? 'Waiting room' : 'No waiting room'} · on sale from ${formatDateTime(s.on_sale_at)} · `
      + `${state} · ${s.rate_per_minute} per minute${s.max_shopping ? `, at most ${s.max_shopping} at once` : ''}`
      + `${s.drawn !== null ? ` · ${s.drawn} in the opening draw` : ''}.`;
    status.dataset.paused = String(s.paused);
    board.replaceChildren(...COUNTS.map(([key, label]) => h('div', { class: 'count', 'data-count': key },
      h('dt', {}, label), h('dd', { id: `sale-count-${key}` }, String(s.counts[key])))));
    waits.textContent = `Wait until admitted: average ${seconds(s.wait_seconds.average)}, longest ${seconds(s.wait_seconds.longest)}.`;
    const toggle = h('button', { type: 'button', id: 'sale-pause', class: 'secondary' }, s.paused ? 'Resume admissions' : 'Pause admissions');
    toggle.addEventListener('click', () => control({ paused: !s.paused }, s.paused ? 'Admissions resumed.' : 'Admissions paused.'));
    const newRate = h('input', { type: 'number', id: 'sale-new-rate', min: '1', max: '100000', value: String(s.rate_per_minute), 'aria-label': 'New rate per minute' });
    const setRate = h('button', { type: 'button', id: 'sale-set-rate', class: 'secondary' }, 'Change the rate');
    setRate.addEventListener('click', () => control({ rate_per_minute: Number(newRate.value) }, `Rate set to ${newRate.value} per minute.`));
    controls.replaceChildren(toggle, ' ', newRate, ' ', setRate);
    if (document.activeElement?.form !== form) {
      opensAt.value = localInput(parseTime(s.on_sale_at));
      guarded.checked = s.guarded;
      rate.value = String(s.rate_per_minute);
      cap.value = String(s.max_shopping);
    }
  }

  async function control(body, said) {
    problem.replaceChildren();
    try {
      render(await api.controlSale(showtimeId, body, { signal: ctx.signal }));
      announce(status, `${said} ${status.textContent}`);
    } catch (err) {
      if (!isAbort(err)) problem.replaceChildren(errorNotice(err));
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    save.disabled = true;
    try {
      render(await api.setSale(showtimeId, {
        on_sale_at: new Date(opensAt.value).toISOString(),
        guarded: guarded.checked,
        rate_per_minute: Number(rate.value),
        max_shopping: Number(cap.value || 0),
      }, { signal: ctx.signal }));
      announce(status, `Saved. ${status.textContent}`);
    } catch (err) {
      if (!isAbort(err)) problem.replaceChildren(errorNotice(err));
    } finally {
      save.disabled = false;
    }
  });

  async function refresh() {
    try {
      render(await api.staffSale(showtimeId, { signal: ctx.signal }));
    } catch (err) {
      if (isAbort(err)) return;
      if (err.status === 404) render(null);
      else problem.replaceChildren(errorNotice(err));
    }
  }
  opensAt.value = localInput(Date.now() + 3600_000);
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  ctx.onCleanup(() => clearInterval(timer));

  return h('section', { 'aria-labelledby': 'sale-heading', id: 'sale-section' },
    h('h2', { id: 'sale-heading' }, 'On sale and waiting room'),
    status, board, waits, controls, problem, form,
    h('p', { class: 'hint' }, 'The dashboard refreshes every 5 seconds; counts are not read aloud as they change.'));
}
