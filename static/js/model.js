// The published model on the phone: fetched when it changed, checked, kept, run in the browser.
// 1. GET /api/v1/models/latest/ with the install id (X-Install-Id: a UUID kept in localStorage,
//    so a staged rollout treats this browser as one device) and If-None-Match (the ETag of the
//    manifest we hold): 304 means the file we keep is current, and nothing else is fetched.
// 2. A new manifest whose sha256 differs: the .tflite is downloaded, its SHA-256 checked against
//    the manifest's (a mismatch is thrown away) and kept with the manifest in IndexedDB, so the
//    model also works offline. Offline or on a server error the kept model is used.
// 3. MediaPipe Tasks for web (@mediapipe/tasks-vision's ImageClassifier, its WebAssembly served
//    from static/vendor/mediapipe/) runs the file as published: it reads the labels and the input's
//    normalisation from the file's metadata. The manifest's crop (the largest centred square) is
//    passed as the region of interest, as LiteRT on the server does it.
(function (scope) {
  "use strict";
  var Outbox = scope.CrowdlensOutbox;
  var INSTALL_ID = "crowdlens-install-id";

  function installId(makeKey) {
    try {
      var id = scope.localStorage.getItem(INSTALL_ID);
      if (!id) { id = makeKey(); scope.localStorage.setItem(INSTALL_ID, id); }
      return id;
    } catch (e) { return null; } // storage blocked: no rollout bucket, the version in service for all
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }

  function sha256(buffer) {
    if (!scope.crypto || !scope.crypto.subtle) return Promise.reject(new Error("no WebCrypto (the page needs https)"));
    return scope.crypto.subtle.digest("SHA-256", buffer).then(hex);
  }

  // -> {manifest, bytes, fetched: bytes downloaded this time} or null when there is no model.
  function current(options) {
    var kept = null;
    return Outbox.modelGet("current").catch(function () { return null; }).then(function (stored) {
      kept = stored || null;
      var headers = { Accept: "application/json" };
      var id = installId(options.makeKey);
      if (id) headers["X-Install-Id"] = id;
      if (kept && kept.etag) headers["If-None-Match"] = kept.etag;
      return scope.fetch(options.manifestUrl, { headers: headers, credentials: "same-origin", cache: "no-store" });
    }).then(function (response) {
      if (response.status === 304 && kept) return { manifest: kept.manifest, bytes: kept.bytes, fetched: 0 };
      if (response.status === 404) return null; // no model published yet
      if (response.status !== 200) throw new Error("manifest " + response.status);
      var etag = response.headers.get("ETag");
      return response.json().then(function (manifest) {
        if (kept && kept.manifest.sha256 === manifest.sha256) {
          return Outbox.modelPut("current", { etag: etag, manifest: manifest, bytes: kept.bytes })
            .then(function () { return { manifest: manifest, bytes: kept.bytes, fetched: 0 }; });
        }
        return scope.fetch(manifest.download_url, { credentials: "same-origin" }).then(function (file) {
          if (file.status !== 200) throw new Error("model download " + file.status);
          return file.arrayBuffer();
        }).then(function (bytes) {
          return sha256(bytes).then(function (digest) {
            if (digest !== manifest.sha256) throw new Error("model file's sha256 differs from the manifest's");
            return Outbox.modelPut("current", { etag: etag, manifest: manifest, bytes: bytes })
              .catch(function () { /* storage full: run it this time anyway */ })
              .then(function () { return { manifest: manifest, bytes: bytes, fetched: bytes.byteLength }; });
          });
        });
      });
    }).catch(function (error) {
      if (kept) return { manifest: kept.manifest, bytes: kept.bytes, fetched: 0, stale: true };
      throw error;
    });
  }

  // A service worker installing for the first time is downloading the runtime into its precache:
  // wait for it (at most 60 s) and read the runtime from there, rather than fetch it a second time.
  function workerSettled() {
    var registering = scope.crowdlensWorker;
    if (!registering) return Promise.resolve();
    return registering.then(function (registration) {
      var worker = registration && (registration.installing || registration.waiting);
      if (!worker || (registration.active && !registration.installing)) return;
      return new Promise(function (resolve) {
        var check = function () { if (worker.state === "activated" || worker.state === "redundant") resolve(); };
        worker.addEventListener("statechange", check);
        setTimeout(resolve, 60000);
        check();
      });
    });
  }

  var visionPromise = null;
  function vision(runtimeBase) {
    if (!visionPromise) {
      visionPromise = workerSettled().then(function () { return import(runtimeBase + "vision_bundle.mjs"); }).then(function (tasks) {
        return tasks.FilesetResolver.forVisionTasks(runtimeBase + "wasm").then(function (fileset) {
          return { tasks: tasks, fileset: fileset };
        });
      });
      visionPromise.catch(function () { visionPromise = null; });
    }
    return visionPromise;
  }

  // -> {classify(file) -> Promise<[{label, score}]>, manifest} or null.
  function load(options) {
    return current(options).then(function (model) {
      if (!model) return null;
      return vision(options.runtimeBase).then(function (v) {
        return v.tasks.ImageClassifier.createFromOptions(v.fileset, {
          baseOptions: { modelAssetBuffer: new Uint8Array(model.bytes), delegate: "CPU" },
          runningMode: "IMAGE", maxResults: options.maxResults || 3,
        });
      }).then(function (classifier) {
        return {
          manifest: model.manifest, fetched: model.fetched,
          classify: function (blob) { return classify(classifier, model.manifest, blob); },
        };
      });
    });
  }

  function classify(classifier, manifest, blob) {
    return scope.createImageBitmap(blob).then(function (bitmap) {
      var w = bitmap.width, h = bitmap.height, options = {};
      if (!manifest.input || manifest.input.resize !== "stretch") {
        var side = Math.min(w, h); // the largest centred square, as the manifest says
        options.regionOfInterest = { left: (w - side) / 2 / w, top: (h - side) / 2 / h,
                                     right: (w + side) / 2 / w, bottom: (h + side) / 2 / h };
      }
      var result = classifier.classify(bitmap, options);
      bitmap.close();
      var head = result.classifications && result.classifications[0];
      return (head ? head.categories : []).map(function (c) {
        var index = c.index;
        var label = c.categoryName || (manifest.labels && manifest.labels[index]) || String(index);
        return { label: label, score: c.score };
      });
    });
  }

  scope.CrowdlensModel = { load: load, current: current, sha256: sha256, installId: installId };
})(self);
