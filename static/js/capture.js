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
// Offline first (static/js/outbox.js): every photo is first kept on the phone (IndexedDB) with
// its key, then sent; a photo that cannot go now (no signal, the hourly quota) waits there, is
// listed under "Waiting on this phone" with its state and a Remove button, and goes by itself on
// Background Sync (the service worker, /sw.js), on the `online` event or the next page load.
// The model (static/js/model.js) guesses what a picked photo shows; its top guess travels with
// the upload as predicted_label / predicted_confidence / model_version.
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
  var owner = form.getAttribute("data-owner") || null;
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var Outbox = window.CrowdlensOutbox && window.indexedDB ? window.CrowdlensOutbox : null;
  var outboxBox = document.getElementById("outbox");
  var outboxList = document.getElementById("outbox-list");
  var outboxCount = document.getElementById("outbox-count");
  var guessBox = document.getElementById("guesses");
  var guessList = document.getElementById("guess-list");

  var MAX_ATTEMPTS = 6;
  var RETRY_STATUSES = [0, 408, 429, 500, 502, 503, 504];
  var loadedAt = Date.now();
  var key = null; // one per photo: made when the photo is picked, reused by every retry
  var busy = false;
  var inFlight = {}; // keys this page is sending itself (the outbox's flush leaves them alone)
  var guess = null; // the model's answer for the picked photo: {file, top: [{label, score}], version}
  var model = null; // the loaded on-device model (CrowdlensModel.load)

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
    showGuesses(null);
    if (fileInput.files.length) guessFor(fileInput.files[0]);
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
    var item = {
      key: key, api: form.getAttribute("data-api"), label: option.getAttribute("data-label"),
      labelName: option.textContent.replace(/^Today's challenge: /, ""), challenge: option.getAttribute("data-challenge") || null,
      blob: file, name: file.name || "photo.jpg", csrf: csrf, createdAt: Date.now(), owner: owner,
      capturedAt: file.lastModified || Date.now(), state: "waiting", attempts: 0,
    };
    if (guess && guess.file === file && guess.top.length) {
      item.predictedLabel = guess.top[0].label;
      item.predictedConfidence = Math.round(guess.top[0].score * 10000) / 10000;
      item.modelVersion = guess.version;
    }
    var data = Outbox ? Outbox.formData(item) : null;
    if (!data) {
      data = new FormData();
      data.append("image", file, item.name);
      data.append("label", item.label);
      if (item.challenge) data.append("challenge", item.challenge);
    }
    setBusy(true);
    var offline = navigator.onLine === false;
    if (!offline) inFlight[key] = item;
    // Kept on the phone first: a reload or a closed tab from here on loses nothing.
    var kept = Outbox ? Outbox.put(offline ? item : withLease(item)).then(function () { return true; }, function () { return false; })
                      : Promise.resolve(false);
    kept.then(function (stored) {
      if (offline && stored) {
        setBusy(false);
        resetPhoto();
        say("No connection: the photo of " + item.labelName + " is kept on this phone and is sent by itself when you are back online.");
        Outbox.requestSync();
        renderOutbox();
        return;
      }
      item.stored = stored;
      send(data, 1, item);
    });
  });

  function withLease(item) {
    var copy = {};
    Object.keys(item).forEach(function (k) { copy[k] = item[k]; });
    copy.state = "sending";
    copy.sendingUntil = Date.now() + (Outbox ? Outbox.SENDING_LEASE_MS : 0);
    return copy;
  }

  function resetPhoto() {
    key = null; // the next photo gets a new key
    fileInput.value = "";
    preview.hidden = true;
    progress.hidden = true;
    showGuesses(null);
  }

  function setBusy(on) {
    busy = on;
    if (on) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  function send(data, attempt, item) {
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
    xhr.onload = function () { done(xhr.status, parse(xhr.responseText), xhr, data, attempt, item); };
    xhr.onerror = xhr.ontimeout = function () { done(0, null, xhr, data, attempt, item); };
    xhr.send(data);
  }

  function parse(text) { try { return JSON.parse(text); } catch (e) { return null; } }

  function done(status, body, xhr, data, attempt, item) {
    var retryAfter = parseInt(xhr.getResponseHeader && xhr.getResponseHeader("Retry-After"), 10);
    if (status === 200 || status === 201) {
      setBusy(false);
      progress.value = 100;
      release(item, true);
      showResult(body, status === 200);
      resetPhoto();
      return;
    }
    var code = body && body.error && body.error.code;
    if (status === 429 && code === "throttled" && item.stored) {
      // The hourly quota: say when it resets; the photo waits on the phone and goes by itself then.
      var why = Outbox.explain(status, body, retryAfter);
      Outbox.update(item.key, { state: why.state, message: why.text, nextTryAt: why.nextTryAt, sendingUntil: 0 }).then(function () {
        delete inFlight[item.key];
        setBusy(false);
        resetPhoto();
        say(why.text, true);
        renderOutbox();
        scheduleFlush(why.nextTryAt);
      });
      return;
    }
    if (RETRY_STATUSES.indexOf(status) >= 0 && attempt < MAX_ATTEMPTS) {
      if (navigator.onLine === false && item.stored) {
        // No signal: the photo stays on the phone; the outbox sends it when the network is back.
        release(item, false).then(function () {
          setBusy(false);
          resetPhoto();
          say("You are offline: the photo of " + item.labelName + " is kept on this phone and is sent by itself when you are back online.");
          Outbox.requestSync();
          renderOutbox();
        });
        return;
      }
      var wait = Math.min(30, Math.pow(2, attempt - 1));
      if (status === 429 && retryAfter > 0) wait = Math.min(300, retryAfter);
      say((status === 0 ? "Connection lost" : "The server is busy") + "; trying again in " + wait + " s\u2026");
      var retry = function () { send(data, attempt + 1, item); };
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
    if (RETRY_STATUSES.indexOf(status) >= 0 && item.stored) {
      // Out of attempts: the photo waits on the phone and goes with the next connection or page load.
      release(item, false).then(function () {
        resetPhoto();
        say("Could not reach the server: the photo is kept on this phone and is sent by itself later.", true);
        Outbox.requestSync();
        renderOutbox();
      });
      return;
    }
    // Refused: nothing was stored; the volunteer can change the label or the photo and press Upload again.
    release(item, true);
    var words = Outbox && Outbox.explain(status, body, retryAfter);
    var message = (words && words.text) || (body && body.error && body.error.message);
    say(message || (status === 0 ? "Could not reach the server. Check your connection and press Upload again." :
                                    "The upload failed (" + status + "). Press Upload to try again."), true);
    if (status === 422 && body && body.error && /challenge/i.test(body.error.code + body.error.message)) refreshChoices();
  }

  // The page is done with an item: sent or refused (taken out of the outbox), or left for the outbox.
  function release(item, finished) {
    delete inFlight[item.key];
    if (!item.stored) return Promise.resolve();
    var step = finished ? Outbox.remove(item.key) : Outbox.update(item.key, { state: "waiting", sendingUntil: 0 });
    return step.catch(function () {}).then(renderOutbox);
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
  // --- the outbox: photos waiting on this phone ------------------------------------------------

  var flushTimer = null;
  function scheduleFlush(at) {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = setTimeout(flushOutbox, Math.max(1000, Math.min(at - Date.now(), 2147483000)));
  }

  function flushOutbox() {
    if (!Outbox || navigator.onLine === false) return;
    Outbox.flush({ csrf: csrf, skip: inFlight, owner: owner, onEvent: outboxEvent }).then(function (outcome) {
      renderOutbox();
      if (outcome && outcome.nextAt) scheduleFlush(outcome.nextAt);
    }, function () { renderOutbox(); });
  }

  function outboxEvent(kind, item, detail) {
    if (kind === "sent") {
      say("Sent from this phone's queue: photo " + detail.id + " of " + item.labelName + ", pending review.");
    } else if (kind === "refused" || kind === "throttled") {
      say(detail, true);
    }
    renderOutbox();
  }

  var thumbs = [];
  function renderOutbox() {
    if (!Outbox || !outboxBox) return Promise.resolve();
    return Outbox.list().then(function (items) {
      thumbs.forEach(function (u) { URL.revokeObjectURL(u); });
      thumbs = [];
      outboxList.textContent = "";
      outboxBox.hidden = items.length === 0;
      outboxCount.textContent = items.length === 1 ? "1 photo waits to be sent." : items.length + " photos wait to be sent.";
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.className = "outbox-item " + item.state;
        li.setAttribute("data-key", item.key);
        var img = document.createElement("img");
        var url = URL.createObjectURL(item.blob);
        thumbs.push(url);
        img.src = url;
        img.width = 64; img.height = 64;
        img.alt = "Photo of " + item.labelName;
        li.appendChild(img);
        var text = document.createElement("p");
        var strong = document.createElement("strong");
        strong.textContent = item.labelName;
        text.appendChild(strong);
        text.appendChild(document.createTextNode(", taken at " + Outbox.clock(item.createdAt) + ": "));
        var state = document.createElement("span");
        state.className = "outbox-state";
        state.textContent = stateText(item);
        text.appendChild(state);
        li.appendChild(text);
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove the photo of " + item.labelName + " taken at " + Outbox.clock(item.createdAt) + " from the queue");
        remove.addEventListener("click", function () {
          if (inFlight[item.key]) return; // being sent right now
          Outbox.remove(item.key).then(function () {
            say("Removed the photo of " + item.labelName + " from this phone's queue.");
            return renderOutbox();
          }).then(function () { (outboxBox.hidden ? fileInput : outboxList).focus(); });
        });
        li.appendChild(remove);
        outboxList.appendChild(li);
      });
    }, function () { outboxBox.hidden = true; });
  }

  function stateText(item) {
    if (item.state === "sending" && item.sendingUntil > Date.now()) return "sending\u2026";
    if (item.state === "throttled" || item.state === "refused") return item.message;
    if (item.message) return item.message;
    return navigator.onLine === false ? "waiting for a connection" : "waiting to be sent";
  }

  if (Outbox) {
    window.addEventListener("online", function () { renderOutbox(); flushOutbox(); });
    window.addEventListener("offline", renderOutbox);
    if (navigator.serviceWorker) {
      navigator.serviceWorker.addEventListener("message", function (event) {
        var m = event.data || {};
        if (m.type === "outbox") outboxEvent(m.kind, m.item, m.detail);
      });
    }
    Outbox.setOwner(owner).catch(function () {});
    keepForOffline();
    renderOutbox().then(flushOutbox); // on every page load: Safari and Firefox have no Background Sync
  }

  // The copy of this page the service worker opens offline: a page loaded without the worker (the
  // first visit, or while it was installing, maybe signed out then) is put there by hand.
  function keepForOffline() {
    var nav = window.performance && performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (!window.caches || !navigator.serviceWorker || navigator.onLine === false || (nav && nav.workerStart > 0)) return;
    fetch("/capture/", { credentials: "same-origin" }).then(function (response) {
      if (response.ok) return caches.open("crowdlens-pages").then(function (cache) { return cache.put("/capture/", response); });
    }).catch(function () {});
  }

  // --- the on-device model --------------------------------------------------------------------

  function labelName(slug) {
    for (var i = 0; i < target.options.length; i++) {
      if (target.options[i].value === slug) return target.options[i].textContent;
    }
    return slug;
  }

  function percent(score) { return Math.round(score * 100) + " %"; }

  function showGuesses(top) {
    if (!guessBox) return;
    guessList.textContent = "";
    guessBox.hidden = !top || !top.length;
    (top || []).forEach(function (g) {
      var li = document.createElement("li");
      li.setAttribute("data-label", g.label);
      li.setAttribute("data-score", String(g.score));
      li.textContent = labelName(g.label) + " " + percent(g.score);
      guessList.appendChild(li);
    });
  }

  var modelReady = null;
  function loadModel() {
    if (modelReady || !window.CrowdlensModel || !guessBox || !window.WebAssembly) return modelReady;
    modelReady = window.CrowdlensModel.load({
      manifestUrl: form.getAttribute("data-model-api"), runtimeBase: form.getAttribute("data-runtime"), makeKey: newKey,
    }).then(function (loaded) {
      model = loaded;
      form.setAttribute("data-model-version", loaded ? String(loaded.manifest.version) : "none");
      return loaded;
    }, function () {
      form.setAttribute("data-model-version", "failed");
      modelReady = null; // try again with the next photo
      return null;
    });
    return modelReady;
  }

  function guessFor(file) {
    var ready = loadModel();
    if (!ready) return;
    ready.then(function (loaded) {
      if (!loaded || fileInput.files[0] !== file) return null;
      return loaded.classify(file).then(function (top) {
        if (fileInput.files[0] !== file) return;
        guess = { file: file, top: top, version: loaded.manifest.version };
        showGuesses(top);
        if (top.length && !busy) {
          say("The model thinks: " + top.map(function (g) { return labelName(g.label) + " " + percent(g.score); }).join(", ") + ".");
        }
      });
    }).catch(function () { showGuesses(null); });
  }

  loadModel();
})();
