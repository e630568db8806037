// Staff: the door. Scan e-tickets (the camera through the browser's BarcodeDetector where there is one, or typed
// codes); online each scan is one POST /api/checkin/ (admitted once, whatever other doors do). Offline the page
// goes on alone: it verifies the code's Ed25519 signature with the public keys it cached (WebCrypto), checks the
// showtime, the time window and the revocation list it cached, admits each ticket once on this device, and keeps
// the scans; back online it syncs them and lists conflicts (the same ticket let in at another door).

import { api, session } from '../api.js';
import { announce, heading, notice } from '../ui.js';
import { formatTime, h, isAbort } from '../util.js';
import { field, staffGate, staffNav } from './staff.js';

const STORE = 'tickets.door.'; // + showtime id
const SYNC_EVERY_MS = 30_000;

function load(showtimeId) {
  try {
    return JSON.parse(localStorage.getItem(STORE + showtimeId) || 'null') || fresh();
  } catch {
    return fresh();
  }
}

function fresh() {
  return { keys: [], revoked: {}, cursor: null, admitted: {}, pending: [], conflicts: [], syncedAt: null };
}

function save(showtimeId, state) {
  localStorage.setItem(STORE + showtimeId, JSON.stringify(state));
}

function unb64(text) {
  const b = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** The code's claims if one of the cached keys signed it; null when forged; undefined when this browser cannot
 * verify Ed25519 (then the page says it cannot decide offline). */
async function verifyOffline(code, keys) {
  const parts = String(code).trim().split('.');
  if (parts.length !== 4 || parts[0] !== 'T1') return null;
  const key = keys.find((k) => k.kid === parts[1]);
  if (!key) return null;
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey('raw', unb64(key.public_key), { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return undefined;
  }
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, unb64(parts[3]),
    new TextEncoder().encode(parts.slice(0, 3).join('.')));
  if (!ok) return null;
  try {
    const c = JSON.parse(new TextDecoder().decode(unb64(parts[2])));
    return { ticketId: c.t, showtimeId: c.s, orderId: c.o, label: c.l, from: c.f * 1000, until: c.u * 1000 };
  } catch {
    return null;
  }
}

const REFUSALS = {
  ticket_forged: 'Not a valid ticket (forged or changed). Do not admit.',
  wrong_showtime: 'This ticket is for another showtime.',
  too_early: 'Too early: doors are not open for this showtime yet.',
  ticket_expired: 'This showtime is over.',
  ticket_refunded: 'Refunded ticket: not valid.',
  ticket_void: 'Voided ticket (payment taken back): not valid.',
};

export async function viewCheckin(ctx, params, query) {
  const here = '#/staff/checkin';
  if (!session.isScanner && !staffGate(ctx, 'Staff: door check-in', here)) return;
  ctx.setTitle('Door check-in');
  const showtimeInput = h('input', { id: 'checkin-showtime', name: 'showtime', required: true, value: query.get('showtime') || '', autocomplete: 'off' });
  const doorInput = h('input', { id: 'checkin-door', name: 'door', required: true, value: localStorage.getItem('tickets.door.name') || 'Door 1' });
  const codeInput = h('input', { id: 'checkin-code', name: 'code', autocomplete: 'off', spellcheck: 'false' });
  const result = h('p', { id: 'checkin-result', class: 'checkin-result', role: 'alert' });
  const status = h('p', { id: 'checkin-status', role: 'status' });
  const conflictsList = h('ul', { id: 'checkin-conflicts' });
  const pendingInfo = h('p', { id: 'checkin-pending' });
  const problem = h('div', {});
  const cameraButton = h('button', { type: 'button', class: 'secondary', id: 'checkin-camera' }, 'Scan with the camera');
  const video = h('video', { id: 'checkin-video', muted: true, playsinline: true, hidden: true, width: '320', height: '240' });
  const syncButton = h('button', { type: 'button', class: 'secondary', id: 'checkin-sync' }, 'Sync now');
  const form = h('form', { id: 'checkin-form', class: 'staff-form' },
    field('Showtime id', showtimeInput, 'On the staff showtime page ("Door check-in for this showtime" fills it in).'),
    field('This door', doorInput),
    field('Ticket code (scan or type)', codeInput),
    h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'checkin-submit' }, 'Check in')));

  ctx.main.replaceChildren(
    heading('Door check-in'),
    session.isStaff ? staffNav('checkin') : null,
    form, result,
    h('p', { class: 'actions' }, 'BarcodeDetector' in window ? cameraButton : null, ' ', syncButton),
    'BarcodeDetector' in window ? video : h('p', { class: 'hint' }, 'This browser has no barcode detector: type or paste codes (a handheld scanner that types works too).'),
    status, pendingInfo, problem,
    h('section', { 'aria-labelledby': 'conflicts-heading' }, h('h2', { id: 'conflicts-heading' }, 'Conflicts'),
      h('p', { class: 'hint' }, 'Tickets this door let in offline that another door had already admitted.'), conflictsList),
    session.isStaff ? scannersSection() : null,
  );

  // Staff give door staff an account that may check tickets in and nothing else.
  function scannersSection() {
    const email = h('input', { type: 'email', id: 'scanner-email', name: 'email', required: true, autocomplete: 'off' });
    const said = h('p', { id: 'scanner-result', role: 'status' });
    const grant = h('button', { type: 'submit', class: 'secondary', id: 'scanner-grant' }, 'Let this account scan tickets');
    const revoke = h('button', { type: 'button', class: 'secondary', id: 'scanner-revoke' }, 'Stop it scanning');
    const set = async (isScanner) => {
      try {
        const r = await api.setScanner({ email: email.value.trim(), is_scanner: isScanner }, { signal: ctx.signal });
        said.textContent = `${r.email} ${r.is_scanner ? 'can now check tickets in (and nothing else staff can do)' : 'can no longer check tickets in'}.`;
      } catch (err) {
        if (!isAbort(err)) said.textContent = err.message;
      }
    };
    const scannerForm = h('form', { id: 'scanner-form', class: 'staff-form' }, field('Door staff account (email)', email), h('p', {}, grant, ' ', revoke), said);
    scannerForm.addEventListener('submit', (event) => { event.preventDefault(); set(true); });
    revoke.addEventListener('click', () => set(false));
    return h('section', { 'aria-labelledby': 'scanners-heading' }, h('h2', { id: 'scanners-heading' }, 'Door staff'), scannerForm);
  }

  let state = null;
  let showtimeId = '';

  function render() {
    if (!state) return;
    pendingInfo.textContent = state.pending.length
      ? `${state.pending.length} offline scan${state.pending.length === 1 ? '' : 's'} waiting to sync.` : 'Every scan is synced.';
    conflictsList.replaceChildren(...(state.conflicts.length ? state.conflicts.map((c) => h('li', {},
      `${c.label || c.ticketId}: let in here (${c.door}) at ${formatTime(c.at)}, already admitted at ${c.firstDoor || 'another door'}`
      + `${c.firstAt ? ` at ${formatTime(Date.parse(c.firstAt))}` : ''}.`)) : [h('li', {}, 'None.')]));
  }

  /** Cache what offline scanning needs: the keys and the revocations since the last cursor. */
  async function refresh() {
    if (!showtimeId) return;
    try {
      const keys = await api.checkinKeys({ signal: ctx.signal });
      state.keys = keys.keys;
      for (;;) {
        const page = await api.revocations(showtimeId, state.cursor, { signal: ctx.signal });
        for (const r of page.results) state.revoked[r.ticket_id] = r.order_id;
        state.cursor = page.cursor;
        if (!page.more) break;
      }
      state.syncedAt = Date.now();
      save(showtimeId, state);
      status.textContent = `Ready for offline use: ${state.keys.length} key${state.keys.length === 1 ? '' : 's'}, `
        + `${Object.keys(state.revoked).length} revoked ticket${Object.keys(state.revoked).length === 1 ? '' : 's'} (updated ${formatTime(state.syncedAt)}).`;
    } catch (err) {
      if (isAbort(err)) return;
      status.textContent = state.syncedAt
        ? `Offline: using what was cached at ${formatTime(state.syncedAt)}.`
        : 'Offline, and nothing cached for this showtime yet: connect once to prepare the door.';
    }
  }

  let syncing = false;
  async function sync() {
    if (!state || !state.pending.length || syncing) return render();
    syncing = true; // one sync at a time: two would send the same scans and report our own as conflicts
    try {
      await syncPending();
    } finally {
      syncing = false;
    }
  }

  async function syncPending() {
    const left = [];
    for (const scan of state.pending) {
      try {
        await api.checkin({ code: scan.code, showtime_id: showtimeId, door: scan.door, scanned_at: new Date(scan.at).toISOString() }, { signal: ctx.signal });
      } catch (err) {
        if (isAbort(err)) return;
        if (err.status === 0 || err.status >= 500) { left.push(scan); continue; } // still offline: keep it
        if (err.code === 'already_admitted') {
          const ours = err.body?.door === scan.door && Date.parse(err.body?.first_admitted_at) === Math.floor(scan.at / 1000) * 1000;
          if (!ours) state.conflicts.push({ ...scan, firstDoor: err.body?.door, firstAt: err.body?.first_admitted_at });
        } else {
          state.conflicts.push({ ...scan, firstDoor: REFUSALS[err.code] || err.message });
        }
      }
    }
    state.pending = left;
    save(showtimeId, state);
    render();
  }

  function show(kind, text) {
    result.dataset.result = kind;
    announce(result, text);
  }

  async function checkIn(code) {
    code = String(code || '').trim();
    if (!code || !showtimeId) return;
    const door = doorInput.value.trim() || 'door';
    try {
      const r = await api.checkin({ code, showtime_id: showtimeId, door }, { signal: ctx.signal });
      state.admitted[r.ticket_id] = { at: Date.now(), door }; // so this door knows it offline too
      save(showtimeId, state);
      show('admitted', `Admitted: ${r.label}.`);
      return;
    } catch (err) {
      if (isAbort(err)) return;
      if (err.status !== 0 && !(err.status >= 500)) {
        if (err.code === 'already_admitted') {
          const when = err.body?.first_admitted_at ? formatTime(Date.parse(err.body.first_admitted_at)) : '';
          show('refused', `Already admitted${err.body?.door ? ` at ${err.body.door}` : ''}${when ? ` at ${when}` : ''}. Do not admit again.`);
        } else {
          show('refused', REFUSALS[err.code] || err.message);
        }
        return;
      }
    }
    // No network: decide here, on what was cached.
    const claims = await verifyOffline(code, state.keys);
    if (claims === undefined) return show('refused', 'This browser cannot verify tickets offline: check the ticket by hand.');
    if (claims === null) return show('refused', `${REFUSALS.ticket_forged} (checked offline)`);
    if (claims.showtimeId !== showtimeId) return show('refused', `${REFUSALS.wrong_showtime} (checked offline)`);
    const now = Date.now();
    if (now < claims.from) return show('refused', `${REFUSALS.too_early} (checked offline)`);
    if (now > claims.until) return show('refused', `${REFUSALS.ticket_expired} (checked offline)`);
    if (state.revoked[claims.ticketId] === claims.orderId) return show('refused', `${REFUSALS.ticket_refunded} (checked offline)`);
    const seen = state.admitted[claims.ticketId];
    if (seen) return show('refused', `${claims.label}: already admitted at this door at ${formatTime(seen.at)}. Do not admit again.`);
    state.admitted[claims.ticketId] = { at: now, door };
    state.pending.push({ code, at: now, door, ticketId: claims.ticketId, label: claims.label });
    save(showtimeId, state);
    render();
    show('admitted', `Admitted offline: ${claims.label}. It syncs when the network is back.`);
  }

  async function chooseShowtime() {
    const id = showtimeInput.value.trim();
    if (!id || id === showtimeId) return;
    showtimeId = id;
    state = load(id);
    render();
    await refresh();
    await sync();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    // Taken now: the next code may be typed (or scanned) while this one is still being checked.
    const code = codeInput.value;
    codeInput.value = '';
    codeInput.focus();
    localStorage.setItem('tickets.door.name', doorInput.value.trim());
    await chooseShowtime();
    await checkIn(code);
  });
  showtimeInput.addEventListener('change', () => chooseShowtime());
  syncButton.addEventListener('click', async () => { await refresh(); await sync(); });
  const onOnline = async () => { await refresh(); await sync(); };
  window.addEventListener('online', onOnline);
  ctx.onCleanup(() => window.removeEventListener('online', onOnline));
  const timer = setInterval(onOnline, SYNC_EVERY_MS);
  ctx.onCleanup(() => clearInterval(timer));

  let stream = null;
  cameraButton.addEventListener('click', async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    } catch (err) {
      problem.replaceChildren(notice('The camera is not available here: type or paste codes instead.', 'info'));
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
    let last = '';
    const loop = async () => {
      if (!stream) return;
      try {
        const found = await detector.detect(video);
        const code = found[0]?.rawValue;
        if (code && code !== last) {
          last = code;
          await chooseShowtime();
          await checkIn(code);
        }
      } catch { /* a frame it could not read */ }
      setTimeout(loop, 250);
    };
    loop();
  });
  ctx.onCleanup(() => { stream?.getTracks().forEach((t) => t.stop()); stream = null; });

  if (showtimeInput.value) await chooseShowtime();
  else problem.replaceChildren(notice('Enter the showtime this door admits to (its id is on the staff showtime page).', 'info'));
}
