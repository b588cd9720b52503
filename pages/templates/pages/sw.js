// Crowdlens's service worker (rendered by pages.views.service_worker; docs/pages.md).
// Workbox (npm, served from static/vendor/workbox/) precaches the app shell and the model's
// runtime; volunteer pages are network-first with the last copy kept for offline use; photos
// waiting in the outbox (static/js/outbox.js) are sent on Background Sync.
importScripts("{{ workbox_base }}workbox-sw.js", "{{ outbox_js }}");
workbox.setConfig({ modulePathPrefix: "{{ workbox_base }}", debug: false });
workbox.core.setCacheNameDetails({ prefix: "crowdlens" });
self.skipWaiting();
workbox.core.clientsClaim();

// The app shell and the MediaPipe runtime, each with its revision (a hash of its bytes).
workbox.precaching.precacheAndRoute({{ precache|safe }});
workbox.precaching.cleanupOutdatedCaches();

var PAGES = "crowdlens-pages";
var CAPTURE = "/capture/";
var OFFLINE_PAGES = /^\/(capture|me|challenges|leaderboard|gallery)?\/?$/;

workbox.routing.registerRoute(function (context) {
  return context.request.mode === "navigate" && context.url.origin === self.location.origin &&
    OFFLINE_PAGES.test(context.url.pathname);
}, new workbox.strategies.NetworkFirst({ cacheName: PAGES, networkTimeoutSeconds: 4, matchOptions: { ignoreVary: true } }));

// The runtime's other files (the no-SIMD WebAssembly for older phones): kept once used.
workbox.routing.registerRoute(function (context) {
  return context.url.origin === self.location.origin && context.url.pathname.indexOf("{{ runtime_base }}") === 0;
}, new workbox.strategies.CacheFirst({ cacheName: "crowdlens-runtime" }));

// Offline and a page never kept: the camera page, which works offline.
workbox.routing.setCatchHandler(function (context) {
  if (context.request.mode === "navigate") {
    return caches.open(PAGES).then(function (cache) {
      return cache.match(CAPTURE, { ignoreVary: true, ignoreSearch: true });
    }).then(function (response) { return response || Response.error(); });
  }
  return Response.error();
});

// Keep the camera page from the first visit on, whatever page installed the worker.
self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(PAGES).then(function (cache) {
    return fetch(CAPTURE, { credentials: "same-origin" }).then(function (response) {
      if (response.ok) return cache.put(CAPTURE, response);
    });
  }).catch(function () { /* offline at install: the page is kept on its next visit */ }));
});

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "signed-out") event.waitUntil(caches.delete(PAGES));
});

// Background Sync: send what waits in the outbox, even with no tab open. A rejected promise
// asks the browser to try again later (Chromium backs off by itself).
self.addEventListener("sync", function (event) {
  if (event.tag !== CrowdlensOutbox.SYNC_TAG) return;
  event.waitUntil(CrowdlensOutbox.modelGet("owner").then(function (owner) {
    return CrowdlensOutbox.flush({ owner: owner || null, onEvent: tell });
  }).then(function (outcome) {
    if (outcome && outcome.pending && !outcome.busy && !outcome.nextAt) throw new Error("photos still waiting");
  }));
});

function tell(kind, item, detail) {
  return self.clients.matchAll({ type: "window" }).then(function (clients) {
    var light = { key: item.key, labelName: item.labelName };
    clients.forEach(function (client) { client.postMessage({ type: "outbox", kind: kind, item: light, detail: detail }); });
  });
}
