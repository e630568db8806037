// The web app's service worker: the app shell (pages, scripts, styles, /config.json) from the network when there
// is one, else from the copy kept the last time it was fetched. So a page that loses the network, the door's
// check-in page above all, can even be reloaded and go on working on what it cached (views/checkin.js keeps the
// keys and the revocation list in localStorage). Network first: a deploy is seen at the next load, never a stale
// copy while online. The API, the WebSocket, the PayPal pages and the local tools are never cached.

const CACHE = 'tickets-shell-v1';
const NEVER = ['/api/', '/ws', '/paypal/', '/@connections/', '/local/'];

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function kept(url) {
  return url.origin === self.location.origin && !NEVER.some((p) => url.pathname.startsWith(p));
}

// The page that registered us loaded its shell before we could see it: it sends those URLs once, to keep now.
self.addEventListener('message', (event) => {
  const urls = (event.data?.keep || []).map((u) => new URL(u, self.location.origin)).filter(kept);
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(urls.map((u) => cache.add(u.href).catch(() => {})))));
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || !kept(url)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) cache.put(request, response.clone());
      return response;
    } catch (err) {
      const kept = await cache.match(request, { ignoreSearch: true });
      if (kept) return kept;
      throw err;
    }
  })());
});
