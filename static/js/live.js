// Keeps sections marked data-live-refresh="<seconds>" fresh: fetches their
// data-live-src (the section's inner HTML, rendered by the server with the
// same template) and swaps it in, only while the page is visible.
// Without JavaScript the section is simply as fresh as the last page load.
(function () {
  "use strict";
  if (!window.fetch) return;
  Array.prototype.forEach.call(document.querySelectorAll("[data-live-src][data-live-refresh]"), function (section) {
    var seconds = Math.max(15, parseInt(section.getAttribute("data-live-refresh"), 10) || 60);
    setInterval(function () {
      if (document.visibilityState !== "visible") return;
      fetch(section.getAttribute("data-live-src"), { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html) section.innerHTML = html; })
        .catch(function () {});
    }, seconds * 1000);
  });
})();
