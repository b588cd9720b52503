// Keeps sections marked data-live-refresh="<seconds>" fresh: fetches the same
// page again and swaps the section's HTML, only while the page is visible.
// Without JavaScript the section is simply as fresh as the last page load.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser) return;
  Array.prototype.forEach.call(document.querySelectorAll("[data-live-refresh]"), function (section) {
    var seconds = Math.max(15, parseInt(section.getAttribute("data-live-refresh"), 10) || 60);
    setInterval(function () {
      if (document.visibilityState !== "visible") return;
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(section.id);
          if (fresh) section.innerHTML = fresh.innerHTML;
        })
        .catch(function () {});
    }, seconds * 1000);
  });
})();
