// Every volunteer page: register the service worker (/sw.js, scope /) that makes the pages an
// installable app and keeps the camera page, its scripts and the model's runtime for offline use.
(function () {
  "use strict";
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  // Registered at once, not after "load": the camera page waits for the first install to finish before
  // it loads the model's runtime (static/js/model.js), so that a first visit downloads the 13 MB of
  // WebAssembly once (into the worker's precache) instead of twice.
  window.crowdlensWorker = navigator.serviceWorker.register("/sw.js", { scope: "/" })
    .catch(function () { return null; /* the pages work without it */ });
  // Signing out forgets the pages kept for offline use (a shared phone shows no one else's /me/).
  document.addEventListener("submit", function (event) {
    var action = event.target.getAttribute && event.target.getAttribute("action");
    if (action === "/signout/" && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "signed-out" });
    }
  });
})();
