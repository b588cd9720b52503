// The verify page's keys (docs/review.md): y yes, n no, u not sure. The page is a plain form; a key presses
// the matching button, once: the form is sent and the next photo comes back as a new page.
(function () {
  "use strict";
  var form = document.getElementById("verify-form");
  if (!form) return;
  var sent = false;
  var first = form.querySelector("button[data-key]");
  if (first) first.focus();
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || sent) return;
    if (event.target.matches("select, input, textarea")) return;  // typing a label's first letters
    var button = form.querySelector('button[data-key="' + event.key + '"]');
    if (!button) return;
    event.preventDefault();
    sent = true;  // a second key before the next photo arrives would judge this photo twice
    button.click();
  });
  form.addEventListener("submit", function () { sent = true; });
})();
