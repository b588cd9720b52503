// Every volunteer page: register the service worker (/sw.js, scope /) that makes the pages an
// installable app and keeps the camera page, its scripts and the model's runtime for offline use.
(function () {
  "use strict";
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* the pages work without it */ });
  });
  // Signing out forgets the pages kept for offline use (a shared phone shows no one else's /me/).
  document.addEventListener("submit", function (event) {
    var action = event.target.getAttribute && event.target.getAttribute("action");
    if (action === "/signout/" && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "signed-out" });
    }
  });
})();
