// One WebSocket to a showtime room that keeps itself connected: exponential backoff with jitter between
// attempts, an immediate retry when the browser comes back online, and a fresh access token on each attempt
// (the token is checked only at the handshake).
//
// API Gateway closes a socket after 10 minutes without a frame from the client and after 2 hours in any case
// (code 1001): a `ping` frame goes out after 4-5 quiet minutes, and a socket the server closes is replaced
// within about a second. Browsers cannot send protocol pings, and those would not count anyway.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
// Jittered, so the sockets of many pages opened together do not ping together.
const KEEPALIVE_MIN_MS = 240_000;
const KEEPALIVE_MAX_MS = 300_000;
// A socket that stayed open this long was healthy: its loss starts the backoff over (first retry within a
// second). One closed sooner keeps counting, so a server that accepts and then drops at once is not hammered.
const STABLE_MS = 3_000;

/** Delay before reconnect attempt `n` (1-based): exponential, capped, with "equal jitter". */
export function backoffDelay(n, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, n - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Quiet time before a keep-alive ping: 4-5 minutes, under API Gateway's 10-minute idle timeout. */
export function keepaliveDelay(random = Math.random) {
  return Math.round(KEEPALIVE_MIN_MS + random() * (KEEPALIVE_MAX_MS - KEEPALIVE_MIN_MS));
}

const DECIMAL = /^\d+$/;

/** Whether stream sequence number `a` comes after `b`: decimal strings of any length, compared without
 * turning them into numbers (they outgrow a double's 53 bits). */
export function seqAfter(a, b) {
  return a.length !== b.length ? a.length > b.length : a > b;
}

/**
 * Remembers, per ticket, the `seq` of the last ticket_status update applied, and drops an update that is not
 * later: a big room is posted in parallel slices, so two updates of one ticket can arrive out of order. An
 * update without a usable `seq` is applied as it comes. Rows of a snapshot or listing carry no `seq`: after
 * one, `reset()` lets the next update of any ticket through.
 */
export class UpdateOrder {
  constructor() {
    this.applied = new Map(); // ticket_id -> seq of the last update applied
  }

  /** The updates worth applying, in their order; they count as applied from here on. */
  fresh(updates) {
    const kept = [];
    for (const u of updates || []) {
      const seq = typeof u?.seq === 'string' && DECIMAL.test(u.seq) ? u.seq : null;
      if (seq !== null && u.ticket_id !== undefined) {
        const id = String(u.ticket_id);
        const last = this.applied.get(id);
        if (last !== undefined && !seqAfter(seq, last)) continue;
        this.applied.set(id, seq);
      }
      kept.push(u);
    }
    return kept;
  }

  reset() {
    this.applied.clear();
  }
}

export class LiveConnection {
  /**
   * @param {() => Promise<string|null>} urlFactory  builds the URL (null: cannot connect, e.g. logged out)
   * @param {(msg: object) => void} onMessage         each JSON message from the server
   * @param {(state: string, info?: object) => void} onState
   *        'connecting' | 'open' | 'reconnecting' ({attempt, delay, retryAt}) | 'unauthenticated' | 'stopped'
   */
  constructor({ urlFactory, onMessage, onState }) {
    this.urlFactory = urlFactory;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.keepalive = null;
    this.openedAt = 0;
    this.stopped = false;
    this.connecting = false;
    this.everOpened = false;
    this.onOnline = () => this.reconnectNow();
    window.addEventListener('online', this.onOnline);
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Connects (again, after stop(): e.g. a page restored from the back-forward cache). */
  start() {
    if (!this.stopped && (this.ws || this.connecting || this.timer)) return;
    if (this.stopped) window.addEventListener('online', this.onOnline);
    this.stopped = false;
    this.connect();
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    try {
      await this.open();
    } finally {
      this.connecting = false;
    }
  }

  async open() {
    this.onState('connecting', { attempt: this.attempt, reconnect: this.everOpened || this.attempt > 0 });
    let url;
    try {
      url = await this.urlFactory();
    } catch {
      url = undefined;
    }
    if (this.stopped) return;
    if (url === null) {
      this.onState('unauthenticated');
      return;
    }
    if (!url) {
      this.scheduleReconnect();
      return;
    }
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      const wasReconnect = this.everOpened || this.attempt > 0;
      this.openedAt = Date.now();
      this.everOpened = true;
      this.scheduleKeepalive();
      this.onState('open', { reconnect: wasReconnect });
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg && typeof msg === 'object' && msg.type !== 'pong') this.onMessage(msg);
    });
    ws.addEventListener('close', () => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearTimeout(this.keepalive);
      // Closed by the server after a good while (its maximum age, the idle timeout, a restart): start over.
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
      this.openedAt = 0;
      if (!this.stopped) this.scheduleReconnect();
    });
    // 'error' is always followed by 'close', which does the work.
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this.onState('reconnecting', { attempt: this.attempt, delay, retryAt: Date.now() + delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Skips the wait (the user asked, or the network came back). */
  reconnectNow() {
    if (this.stopped || this.ws || this.connecting) return;
    this.connect();
  }

  /** Sends a JSON message; false when not connected. */
  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    this.scheduleKeepalive(); // any frame resets the server's idle clock
    return true;
  }

  scheduleKeepalive() {
    clearTimeout(this.keepalive);
    this.keepalive = setTimeout(() => this.send({ action: 'ping' }), keepaliveDelay());
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.keepalive);
    window.removeEventListener('online', this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'leaving');
    this.onState('stopped');
  }
}
