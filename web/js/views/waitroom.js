// The waiting room of a guarded showtime (docs/API.md, "Waiting room"): join, then poll (the poll is the
// heartbeat) and show the place, the estimated wait and a progress bar until the server admits the buyer; then
// hand over to the seat map with the admission.

import { api } from '../api.js';
import { announce, errorNotice, heading } from '../ui.js';
import { countdown, formatDateTime, formatTime, h, isAbort, parseTime, sleep } from '../util.js';

const ADMISSION_KEY = 'tickets.admission.'; // + showtime id: {token, expires_at}

/** The admission this tab holds for a showtime, while it is live. */
export function savedAdmission(showtimeId) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(ADMISSION_KEY + showtimeId) || 'null');
    if (saved && parseTime(saved.expires_at) > Date.now()) return saved;
  } catch { /* unreadable: none */ }
  sessionStorage.removeItem(ADMISSION_KEY + showtimeId);
  return null;
}

export function keepAdmission(showtimeId, admission) {
  if (admission) sessionStorage.setItem(ADMISSION_KEY + showtimeId, JSON.stringify(admission));
  else sessionStorage.removeItem(ADMISSION_KEY + showtimeId);
}

function waitText(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return minutes === 1 ? 'about a minute' : `about ${minutes} minutes`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `about ${hours} h ${String(rest).padStart(2, '0')} min`;
}

/**
 * Renders the waiting room into ctx.main and polls until admitted (resolves with the admission), or until the
 * page goes away (resolves null). `title`, `where`: what the buyer is queuing for.
 */
export async function waitForAdmission(ctx, { showtimeId, title, where, backHref }) {
  const status = h('p', { id: 'queue-status', class: 'queue-status', 'data-state': 'joining' }, 'Joining the queue…');
  const position = h('p', { id: 'queue-position', class: 'queue-position' });
  const progress = h('progress', { id: 'queue-progress', max: '100', 'aria-labelledby': 'queue-progress-label' });
  const progressLabel = h('p', { id: 'queue-progress-label', class: 'queue-progress-label' }, 'Your progress in the queue');
  const eta = h('p', { id: 'queue-eta', class: 'queue-eta' });
  // Screen readers hear changes of position at most once a minute, and every change of state at once.
  const announcer = h('p', { id: 'queue-announce', class: 'visually-hidden', 'aria-live': 'polite' });
  const leave = h('button', { type: 'button', id: 'queue-leave', class: 'secondary' }, 'Leave the queue');
  const problem = h('div', { class: 'queue-problem' });
  ctx.main.replaceChildren(
    h('p', { class: 'breadcrumb' }, h('a', { href: backHref }, `← ${title}`)),
    heading(`Waiting room: ${title}`),
    h('p', { class: 'meta' }, where),
    h('section', { class: 'queue-panel', 'aria-labelledby': 'queue-heading' },
      h('h2', { id: 'queue-heading' }, 'Your place in the queue'),
      status, position, progressLabel, progress, eta, announcer, problem,
      h('p', { class: 'hint' }, 'Keep this page open: it checks your place by itself and takes you to the seats '
        + 'when it is your turn. Closing it for more than a minute gives your place up. '
        + 'Everyone who joined before the sale opened was put in a random order at opening, so joining earlier '
        + 'than others did not change anybody\'s place.'),
      h('p', {}, leave)),
  );
  ctx.setTitle(`Waiting room: ${title}`);

  let left = false;
  leave.addEventListener('click', async () => {
    leave.disabled = true;
    try {
      await api.leaveQueue(showtimeId, { signal: ctx.signal });
      left = true;
      keepAdmission(showtimeId, null);
      ctx.navigate(backHref);
    } catch (err) {
      if (!isAbort(err)) problem.replaceChildren(errorNotice(err));
      leave.disabled = false;
    }
  });

  let firstAhead = null;
  let lastAnnounced = { state: null, at: 0, ahead: null };
  let place;
  try {
    place = await api.joinQueue(showtimeId, { signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return null;
    status.textContent = 'Could not join the queue.';
    problem.replaceChildren(errorNotice(err));
    return null;
  }
  for (;;) {
    if (left || ctx.signal.aborted) return null;
    problem.replaceChildren();
    if (place.state === 'admitted' && place.admission) {
      keepAdmission(showtimeId, place.admission);
      status.dataset.state = 'admitted';
      status.textContent = `It is your turn! Pick your seats before ${formatTime(parseTime(place.admission.expires_at))}.`;
      progress.value = 100;
      announce(announcer, 'It is your turn. Taking you to the seat map.');
      return place.admission;
    }
    if (place.state !== 'waiting') {
      render(place);
      const again = h('button', { type: 'button', id: 'queue-rejoin', class: 'primary' }, 'Join again at the back of the queue');
      again.addEventListener('click', () => ctx.reload());
      problem.replaceChildren(again);
      return null;
    }
    render(place);
    try {
      await sleep(Math.max(3, Number(place.poll_after_seconds) || 10) * 1000, ctx.signal);
      place = await api.queueStatus(showtimeId, { signal: ctx.signal });
    } catch (err) {
      if (isAbort(err)) return null;
      problem.replaceChildren(errorNotice(err, h('p', {}, 'Still trying: your place is kept for a minute.')));
      try {
        await sleep(5000, ctx.signal);
        place = await api.queueStatus(showtimeId, { signal: ctx.signal });
      } catch (again) {
        if (isAbort(again)) return null;
      }
    }
  }

  function render(p) {
    status.dataset.state = p.state;
    let text;
    if (p.state === 'waiting' && !p.drawn) {
      const opens = parseTime(p.on_sale_at);
      text = opens > Date.now()
        ? `You are in the draw. The sale opens at ${formatDateTime(p.on_sale_at)} (in ${countdown(opens - Date.now())}); then everyone who joined before it is put in a random order.`
        : 'The sale has opened: the draw is putting everyone who joined before it in a random order…';
      position.textContent = '';
      progress.removeAttribute('value'); // indeterminate until the draw gives a position
      eta.textContent = '';
    } else if (p.state === 'waiting') {
      text = p.paused ? 'The sale is paused by the cinema. Your place is kept.' : 'You are in the queue.';
      if (firstAhead === null || p.ahead > firstAhead) firstAhead = p.ahead;
      position.textContent = `Your number: ${p.position}. People ahead of you: ${p.ahead}.`;
      progress.value = firstAhead ? Math.round(100 * (firstAhead - p.ahead) / firstAhead) : 100;
      const wait = waitText(p.estimated_wait_seconds);
      eta.textContent = wait ? `Estimated wait: ${wait}.` : (p.paused ? 'No estimate while paused.' : '');
    } else {
      const ended = {
        left: 'You left the queue.',
        bought: 'You bought tickets for this showtime; your turn is over.',
        lapsed: 'Your turn to pick seats ended before you used it.',
        vanished: 'You were away when your turn came, so the queue went on without you.',
      };
      text = ended[p.state] || `Your place is ${p.state}.`;
      position.textContent = '';
      eta.textContent = '';
    }
    status.textContent = text;
    const now = Date.now();
    const changedState = lastAnnounced.state !== `${p.state}/${p.drawn}/${p.paused}`;
    if (changedState || (p.ahead !== lastAnnounced.ahead && now - lastAnnounced.at > 60_000)) {
      const spoken = p.state === 'waiting' && p.drawn
        ? `${text} ${p.ahead} people ahead of you.${eta.textContent ? ` ${eta.textContent}` : ''}`
        : text;
      announce(announcer, spoken);
      lastAnnounced = { state: `${p.state}/${p.drawn}/${p.paused}`, at: now, ahead: p.ahead };
    }
  }
}
