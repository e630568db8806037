// /paypal/return and /paypal/cancel serve the app's index.html: load the app's files (and send in-app links) to
// the folder the app lives in, not to /paypal/. A file of its own (not inline) so the Content-Security-Policy can
// be script-src 'self'.
(function () {
  var m = /^(.*\/)paypal\/(return|cancel)\/?$/.exec(location.pathname);
  if (!m) return;
  var base = document.createElement('base');
  base.href = m[1];
  document.head.appendChild(base);
})();
