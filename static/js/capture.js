// Camera page: upload with a progress bar and automatic retries.
// Without this script the form still posts to /capture/ (see pages/views.py).
// For screen readers: every step and the final result ("Sent! Photo 5 of Mug:
// pending review") is written to the polite live region #upload-status and
// stays there until the next photo is picked; the Upload button is never
// disabled (that would drop the focus to the page's body) but marked
// aria-disabled while busy, and a second press is ignored.
// With it the upload goes to the phone app's API, POST /api/v1/photos/, with
// one Idempotency-Key per photo, so a retry after a lost response never
// creates a second photo.
(function () {
  "use strict";
  var form = document.getElementById("capture-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;

  var fileInput = document.getElementById("id_image");
  var target = document.getElementById("id_target");
  var progress = document.getElementById("progress");
  var statusBox = document.getElementById("upload-status");
  var button = document.getElementById("upload-button");
  var preview = document.getElementById("preview");
  var result = document.getElementById("result");
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  var MAX_ATTEMPTS = 6;
  var RETRY_STATUSES = [0, 408, 429, 500, 502, 503, 504];
  var loadedAt = Date.now();
  var key = null; // one per photo: made when the photo is picked, reused by every retry
  var busy = false;

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // Plain-http hosts other than localhost have no randomUUID: build a v4 UUID by hand.
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function say(text, isError) {
    statusBox.textContent = "";
    var p = document.createElement("p");
    p.textContent = text;
    if (isError) p.className = "error";
    statusBox.appendChild(p);
  }

  fileInput.addEventListener("change", function () {
    key = fileInput.files.length ? newKey() : null;
    result.hidden = true;
    statusBox.textContent = "";
    progress.hidden = true;
    if (fileInput.files.length && window.URL && URL.createObjectURL) {
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(fileInput.files[0]);
      preview.hidden = false;
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var file = fileInput.files[0];
    var option = target.options[target.selectedIndex];
    if (!option || !option.value) { say("Pick what the photo shows.", true); target.focus(); return; }
    if (!file) { say("Choose or take a photo first.", true); fileInput.focus(); return; }
    if (maxBytes && file.size > maxBytes) { say("This photo is too large (over " + Math.round(maxBytes / 1048576) + " MB).", true); return; }
    if (!key) key = newKey();
    var data = new FormData();
    data.append("image", file, file.name || "photo.jpg");
    data.append("label", option.getAttribute("data-label"));
    if (option.getAttribute("data-challenge")) data.append("challenge", option.getAttribute("data-challenge"));
    setBusy(true);
    send(data, 1);
  });

  function setBusy(on) {
    busy = on;
    if (on) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  function send(data, attempt) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("data-api"));
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Idempotency-Key", key);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.timeout = 120000;
    progress.hidden = false;
    progress.value = 0;
    say(attempt > 1 ? "Uploading again (attempt " + attempt + " of " + MAX_ATTEMPTS + ")\u2026" : "Uploading\u2026");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        progress.value = Math.round((e.loaded / e.total) * 100);
        progress.setAttribute("aria-valuetext", progress.value + "% sent");
      }
    };
    xhr.onload = function () { done(xhr.status, parse(xhr.responseText), xhr, data, attempt); };
    xhr.onerror = xhr.ontimeout = function () { done(0, null, xhr, data, attempt); };
    xhr.send(data);
  }

  function parse(text) { try { return JSON.parse(text); } catch (e) { return null; } }

  function done(status, body, xhr, data, attempt) {
    if (status === 200 || status === 201) {
      setBusy(false);
      progress.value = 100;
      showResult(body, status === 200);
      key = null; // the next photo gets a new key
      fileInput.value = "";
      preview.hidden = true;
      return;
    }
    if (RETRY_STATUSES.indexOf(status) >= 0 && attempt < MAX_ATTEMPTS) {
      var wait = Math.min(30, Math.pow(2, attempt - 1));
      var retryAfter = parseInt(xhr.getResponseHeader && xhr.getResponseHeader("Retry-After"), 10);
      if (status === 429 && retryAfter > 0) wait = Math.min(300, retryAfter);
      say((status === 0 ? "Connection lost" : "The server is busy") + "; trying again in " + wait + " s\u2026");
      var retry = function () { send(data, attempt + 1); };
      if (navigator.onLine === false) {
        say("You are offline; the upload continues when you are back online.");
        window.addEventListener("online", function once() { window.removeEventListener("online", once); retry(); });
      } else {
        setTimeout(retry, wait * 1000);
      }
      return;
    }
    setBusy(false);
    progress.hidden = true;
    var message = body && body.error && body.error.message;
    say(message || (status === 0 ? "Could not reach the server. Check your connection and press Upload again." :
                                    "The upload failed (" + status + "). Press Upload to try again."), true);
    if (status === 422 && body && body.error && /challenge/i.test(body.error.code + body.error.message)) refreshChoices();
  }

  function showResult(photo, repeated) {
    progress.hidden = true;
    var img = document.getElementById("result-img");
    img.src = photo.thumbnail_url;
    var text = document.getElementById("result-text");
    text.textContent = "";
    text.setAttribute("data-photo-id", photo.id);
    text.appendChild(document.createTextNode("Photo " + photo.id + " of "));
    var labelName = target.options[target.selectedIndex].textContent.replace(/^Today's challenge: /, "");
    var strong = document.createElement("strong");
    strong.textContent = labelName;
    text.appendChild(strong);
    text.appendChild(document.createTextNode(": "));
    var badge = document.createElement("span");
    badge.className = "badge " + photo.status;
    var statusText = photo.status === "pending" ? "Pending review" : photo.status;
    badge.textContent = statusText;
    text.appendChild(badge);
    if (repeated) text.appendChild(document.createTextNode(" (already received earlier)"));
    // The live region's last word, kept until the next photo is picked.
    say("Sent! Photo " + photo.id + " of " + labelName + ": " + statusText.toLowerCase() +
        (repeated ? " (already received earlier)." : "."));
    document.getElementById("another").href = "/capture/?target=" + encodeURIComponent(target.value);
    result.hidden = false;
    result.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // Phones keep a tab open for days: when the page comes back after a while,
  // fetch today's challenge and the labels again so that a closed challenge
  // is not offered any more.
  function refreshChoices() {
    loadedAt = Date.now();
    var get = function (url) {
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); })
        .catch(function () { return { status: 0, body: null }; });
    };
    Promise.all([get(form.getAttribute("data-challenge-api")), get(form.getAttribute("data-labels-api"))]).then(function (res) {
      // 404 means "no challenge open now"; anything else but 200 leaves the choices as they are.
      if ((res[0].status !== 200 && res[0].status !== 404) || res[1].status !== 200) return;
      var challenge = res[0].status === 200 ? res[0].body : null;
      var labels = res[1].body && (res[1].body.results || res[1].body);
      if (!Array.isArray(labels)) return;
      var chosen = target.value;
      target.textContent = "";
      if (challenge) {
        target.appendChild(option("challenge", "Today's challenge: " + challenge.label_name, challenge.label, challenge.id));
      } else {
        var placeholder = option("", "Pick a label", "", null);
        placeholder.disabled = true;
        target.appendChild(placeholder);
      }
      labels.forEach(function (l) { target.appendChild(option(l.slug, l.name, l.slug, null)); });
      target.value = chosen;
      if (target.selectedIndex < 0) target.selectedIndex = 0;
    });
  }

  function option(value, text, label, challengeId) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    o.setAttribute("data-label", label);
    if (challengeId) o.setAttribute("data-challenge", challengeId);
    return o;
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !busy && Date.now() - loadedAt > 5 * 60 * 1000) refreshChoices();
  });
})();
