// The camera page's outbox: photos kept on the phone (IndexedDB) until the server has them.
// Loaded by the page (static/js/capture.js) and by the service worker (/sw.js), which both send
// from it: the page on load, on the `online` event and when a photo is taken; the service worker
// on Background Sync (Chromium), even after the tab is closed. Each item keeps everything its
// upload needs, the Idempotency-Key made when the photo was taken included, so however often it
// is sent (a retry after a lost answer, two tabs, the page and the service worker at once) the
// server stores it once and answers the repeats with the same photo (200). See docs/pages.md.
(function (scope) {
  "use strict";
  var DB_NAME = "crowdlens";
  var DB_VERSION = 1;
  var STORE = "outbox";
  var SYNC_TAG = "crowdlens-outbox";
  var SENDING_LEASE_MS = 130000; // longer than one upload's timeout (120 s): another sender leaves it alone
  var RETRY_STATUSES = [0, 408, 500, 502, 503, 504];

  var dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        if (!scope.indexedDB) { reject(new Error("no IndexedDB")); return; }
        var open = scope.indexedDB.open(DB_NAME, DB_VERSION);
        open.onupgradeneeded = function () {
          var d = open.result;
          if (!d.objectStoreNames.contains(STORE)) d.createObjectStore(STORE, { keyPath: "key" });
          if (!d.objectStoreNames.contains("model")) d.createObjectStore("model");
        };
        open.onsuccess = function () { resolve(open.result); };
        open.onerror = function () { reject(open.error); };
      });
      dbPromise.catch(function () { dbPromise = null; });
    }
    return dbPromise;
  }

  function tx(store, mode, work) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction(store, mode);
        var result;
        t.oncomplete = function () { resolve(result); };
        t.onerror = t.onabort = function () { reject(t.error); };
        result = work(t.objectStore(store));
      });
    });
  }

  function request(req) {
    return new Promise(function (resolve, reject) {
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }

  function list() {
    return db().then(function (d) {
      return request(d.transaction(STORE).objectStore(STORE).getAll());
    }).then(function (items) {
      return items.sort(function (a, b) { return a.createdAt - b.createdAt; });
    });
  }
  function get(key) { return db().then(function (d) { return request(d.transaction(STORE).objectStore(STORE).get(key)); }); }
  function put(item) { return tx(STORE, "readwrite", function (s) { s.put(item); }); }
  function remove(key) { return tx(STORE, "readwrite", function (s) { s.delete(key); }); }
  function update(key, changes) {
    return tx(STORE, "readwrite", function (s) {
      var req = s.get(key);
      req.onsuccess = function () {
        if (!req.result) return; // removed meanwhile (sent, or the volunteer took it out)
        var item = req.result;
        Object.keys(changes).forEach(function (k) { item[k] = changes[k]; });
        s.put(item);
      };
    });
  }

  // The IndexedDB also keeps the on-device model (static/js/model.js): one database, one place.
  function modelGet(name) { return db().then(function (d) { return request(d.transaction("model").objectStore("model").get(name)); }); }
  function modelPut(name, value) { return tx("model", "readwrite", function (s) { s.put(value, name); }); }

  function formData(item) {
    var data = new FormData();
    data.append("image", item.blob, item.name || "photo.jpg");
    data.append("label", item.label);
    if (item.challenge) data.append("challenge", item.challenge);
    if (item.capturedAt) data.append("captured_at", new Date(item.capturedAt).toISOString());
    if (item.predictedLabel) {
      data.append("predicted_label", item.predictedLabel);
      data.append("predicted_confidence", String(item.predictedConfidence));
      data.append("model_version", String(item.modelVersion));
    }
    return data;
  }

  function clock(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // Why the server refused, in the volunteer's words, and what to do (null: retry later, no words needed).
  function explain(status, body, retryAfterSeconds, now) {
    var code = body && body.error && body.error.code;
    var message = body && body.error && body.error.message;
    if (status === 429 && code === "throttled") {
      var at = (now || Date.now()) + Math.max(1, retryAfterSeconds || 60) * 1000;
      return { state: "throttled", nextTryAt: at,
               text: "You have sent as many photos as an hour allows. You can send again at " + clock(at) +
                     "; this photo waits on your phone and goes by itself then." };
    }
    if (code === "too_large") return { state: "refused", text: "This photo is too large to send. Take it again at a lower resolution in the camera's settings, or pick a smaller file." };
    if (code === "too_many_pixels") return { state: "refused", text: "This photo has too many pixels to send. Take it again at a lower resolution in the camera's settings." };
    if (code === "unsupported") return { state: "refused", text: "This file is not a photo we can read (JPEG, PNG, WebP or HEIC). Take the photo again with the camera, or pick another file." };
    if (code === "corrupt") return { state: "refused", text: "This photo could not be read: the file looks damaged. Take the photo again." };
    if (status === 403) return { state: "waiting", text: "Your session has ended: sign in again and the photo is sent." };
    if (RETRY_STATUSES.indexOf(status) >= 0) return null;
    return { state: "refused", text: message || ("The server refused this photo (" + status + ").") };
  }

  // Whose photos this phone may send now: the capture page records the signed-in volunteer, the
  // service worker reads it on Background Sync (the session cookie decides whose account it is).
  function setOwner(owner) { return modelPut("owner", owner); }

  // Send every item that is due, one at a time, under a lock so that two tabs or the page and the
  // service worker do not send at once (where the Web Locks API exists; the key keeps it exactly
  // once anyway). options: csrf (the page's current token; the service worker uses the item's),
  // skip (keys the page is sending itself), onEvent(kind, item, detail).
  function flush(options) {
    options = options || {};
    var run = function () { return flushUnlocked(options); };
    if (scope.navigator && scope.navigator.locks && scope.navigator.locks.request) {
      return scope.navigator.locks.request(SYNC_TAG, { ifAvailable: true }, function (lock) {
        return lock ? run() : { sent: 0, pending: true, busy: true };
      });
    }
    return run();
  }

  function flushUnlocked(options) {
    var emit = options.onEvent || function () {};
    var skip = options.skip || {};
    var outcome = { sent: 0, pending: false, nextAt: null };
    return list().then(function (items) {
      var now = Date.now();
      var due = items.filter(function (item) {
        if (skip[item.key] || item.state === "refused") return false;
        // Another account's photos (a shared phone) wait until their owner signs in again.
        if (options.owner !== undefined && item.owner && item.owner !== options.owner) return false;
        if (item.sendingUntil && item.sendingUntil > now) { outcome.pending = true; return false; }
        if (item.nextTryAt && item.nextTryAt > now) {
          outcome.pending = true;
          outcome.nextAt = Math.min(outcome.nextAt || Infinity, item.nextTryAt);
          return false;
        }
        return true;
      });
      var step = function (i) {
        if (i >= due.length) return outcome;
        var item = due[i];
        return update(item.key, { state: "sending", sendingUntil: Date.now() + SENDING_LEASE_MS }).then(function () {
          emit("sending", item);
          return send(item, options.csrf || item.csrf);
        }).then(function (answer) {
          if (answer.status === 200 || answer.status === 201) {
            outcome.sent += 1;
            return remove(item.key).then(function () { emit("sent", item, answer.body); return step(i + 1); });
          }
          var why = explain(answer.status, answer.body, answer.retryAfter);
          if (!why) { // the network or the server failed: keep it, try again later
            var attempts = (item.attempts || 0) + 1;
            var wait = Math.min(300, Math.pow(2, attempts - 1)) * 1000;
            outcome.pending = true;
            outcome.nextAt = Date.now() + wait;
            return update(item.key, { state: "waiting", sendingUntil: 0, attempts: attempts,
                                      nextTryAt: answer.status === 0 ? 0 : Date.now() + wait,
                                      message: answer.status === 0 ? "" : "The server is busy; trying again shortly." })
              .then(function () { emit("waiting", item); return outcome; }); // stop: the next ones would fail alike
          }
          return update(item.key, { state: why.state, sendingUntil: 0, message: why.text, nextTryAt: why.nextTryAt || 0 })
            .then(function () {
              emit(why.state, item, why.text);
              if (why.state === "throttled" || why.state === "waiting") {
                outcome.pending = true;
                if (why.nextTryAt) outcome.nextAt = why.nextTryAt;
                return outcome; // the quota (or the session) holds for every photo alike
              }
              return step(i + 1);
            });
        });
      };
      return step(0);
    });
  }

  function send(item, csrf) {
    var headers = { "Idempotency-Key": item.key, Accept: "application/json" };
    if (csrf) headers["X-CSRFToken"] = csrf;
    return scope.fetch(item.api || "/api/v1/photos/", {
      method: "POST", body: formData(item), headers: headers, credentials: "same-origin", cache: "no-store",
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { body = null; }
        return { status: response.status, body: body, retryAfter: parseInt(response.headers.get("Retry-After"), 10) || 0 };
      });
    }, function () { return { status: 0, body: null, retryAfter: 0 }; });
  }

  // Ask the service worker to send on Background Sync (Chromium); elsewhere the page's `online`
  // listener and the next page load do it.
  function requestSync() {
    if (!scope.navigator || !scope.navigator.serviceWorker) return Promise.resolve(false);
    return scope.navigator.serviceWorker.ready.then(function (registration) {
      if (!registration.sync) return false;
      return registration.sync.register(SYNC_TAG).then(function () { return true; });
    }).catch(function () { return false; });
  }

  scope.CrowdlensOutbox = {
    SYNC_TAG: SYNC_TAG, SENDING_LEASE_MS: SENDING_LEASE_MS, RETRY_STATUSES: RETRY_STATUSES,
    list: list, get: get, put: put, remove: remove, update: update, flush: flush, explain: explain, setOwner: setOwner,
    formData: formData, requestSync: requestSync, modelGet: modelGet, modelPut: modelPut, clock: clock,
  };
})(self);
