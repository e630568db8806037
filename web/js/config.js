// Where the API lives. Locally the stack serves GET /config.json; on S3/CloudFront a config.json with the real
// API Gateway URLs is written beside these files. Without it (or if it is not valid JSON), same origin is used.

let pending = null;

function sameOriginDefaults() {
  const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return { apiBase: `${location.origin}/api`, wsUrl: `${wsScheme}//${location.host}/ws` };
}

function cleanUrl(value, fallback) {
  if (typeof value !== 'string' || !value.trim()) return fallback;
  try {
    return new URL(value.trim(), location.href).href.replace(/\/+$/, '');
  } catch {
    return fallback;
  }
}

async function fetchConfig() {
  const defaults = sameOriginDefaults();
  let raw = {};
  try {
    // Relative to the app's own folder (this file lives in js/), not to an SPA path such as /paypal/return.
    const res = await fetch(new URL('../config.json', import.meta.url), {
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    if (res.ok) raw = await res.json();
  } catch {
    // Missing, unreachable or not JSON (an SPA fallback may answer index.html): use the defaults.
  }
  if (!raw || typeof raw !== 'object') raw = {};
  return Object.freeze({
    apiBase: cleanUrl(raw.apiBase, defaults.apiBase),
    wsUrl: cleanUrl(raw.wsUrl, defaults.wsUrl),
  });
}

/** The app's config, fetched once per page load. */
export function getConfig() {
  pending ??= fetchConfig();
  return pending;
}
