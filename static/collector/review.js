// The review queue's keys and in-place decisions (docs/review.md). Without this script the page is plain
// forms; with it, one key decides the photo in focus (or the selection), the decision is posted with
// fetch while focus moves on to the next photo, and the next page of photos is swapped in when every
// card is decided.
(function () {
  "use strict";
  var app = document.getElementById("review-app");
  if (!app) return;
  var form = document.getElementById("review-form");
  var statusBox = document.getElementById("review-status");
  var countBox = document.getElementById("review-count");
  var selectionBox = document.getElementById("selection-count");
  var reasonPrompt = document.getElementById("reason-prompt");
  var labelPrompt = document.getElementById("label-prompt");
  var labelSelect = document.getElementById("prompt-label");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var reasonButtons = Array.prototype.slice.call(reasonPrompt.querySelectorAll("[data-reason]"));
  var lastCard = null;      // the card keys act on when focus is in a prompt
  var promptFor = null;     // the cards an open prompt decides
  var inFlight = 0;
  var queue = Promise.resolve();  // the decisions being sent, one after another
  var loading = false;
  var preloaded = [];       // Image objects: kept so the browser keeps the next photos in its cache
  document.documentElement.classList.add("review-js");

  function cards() { return Array.prototype.slice.call(document.querySelectorAll(".review-card")); }
  function pendingAfter(card) {
    var list = cards(), start = list.indexOf(card);
    for (var step = 1; step <= list.length; step++) {
      var next = list[(start + step) % list.length];
      if (next.dataset.state === "pending") return next;
    }
    return null;
  }
  function box(card) { return card.querySelector("input[name=ids]"); }
  function selected() { return cards().filter(function (card) { return box(card).checked; }); }
  function say(text, isError) {
    statusBox.classList.toggle("errornote", !!isError);
    statusBox.textContent = text;
  }
  function photoWord(n) { return n === 1 ? "photo" : "photos"; }
  function name(list) {
    return list.length === 1 ? "photo #" + list[0].dataset.photoId : list.length + " selected photos";
  }

  function focusCard(card) {
    if (!card) return;
    cards().forEach(function (other) { other.tabIndex = -1; });
    card.tabIndex = 0;
    card.focus();
    card.scrollIntoView({block: "nearest"});
    lastCard = card;
  }

  function prepare() {
    // One tab stop for the whole grid (the card in focus); the arrows move between cards.
    cards().forEach(function (card) {
      card.querySelectorAll("a, button, input").forEach(function (control) { control.tabIndex = -1; });
    });
    var first = cards().filter(function (card) { return card.dataset.state === "pending"; })[0];
    if (first) focusCard(first);
    updateSelection();
    var wrap = document.getElementById("review-grid-wrap");
    preloaded = (wrap.dataset.preload || "").split(" ").filter(Boolean).map(function (url) {
      var image = new Image();
      image.src = url;
      return image;
    });
  }

  function updateSelection() {
    var n = selected().length;
    selectionBox.textContent = n ? n + " " + photoWord(n) : "No photos";
    cards().forEach(function (card) { card.classList.toggle("is-selected", box(card).checked); });
  }

  function setWaiting(n) {
    var label = app.querySelector("#filter-label").value;
    countBox.textContent = n + " " + photoWord(n) + " waiting" + (label ? " under “" + label + "”" : "") +
      " (oldest first; your own photos are left to other reviewers).";
  }

  function move(card, key) {
    var list = cards(), i = list.indexOf(card), columns = 1;
    while (columns < list.length && list[columns].offsetTop === list[0].offsetTop) columns++;
    var j = {ArrowLeft: i - 1, ArrowRight: i + 1, ArrowUp: i - columns, ArrowDown: i + columns,
             Home: 0, End: list.length - 1}[key];
    if (j >= 0 && j < list.length) focusCard(list[j]);
  }

  function targets(card) {
    var chosen = selected();
    return chosen.length ? chosen : (card ? [card] : []);
  }

  function decide(list, decision, extra) {
    var asked = list;
    list = list.filter(function (card) { return card.dataset.state !== "saving"; });  // no double submission
    if (!list.length) {  // a second click on a photo being saved: only move on, as the first click did
      if (decision !== "relabel" && pendingAfter(asked[asked.length - 1])) focusCard(pendingAfter(asked[asked.length - 1]));
      return;
    }
    var body = new URLSearchParams();
    body.append("decision", decision);
    list.forEach(function (card) { body.append("ids", card.dataset.photoId); });
    Object.keys(extra || {}).forEach(function (key) { body.append(key, extra[key]); });
    var before = {};
    list.forEach(function (card) {
      box(card).checked = false;  // decided: the next key acts on the photo in focus, not on this selection
      before[card.dataset.photoId] = card.dataset.state;
      card.dataset.state = "saving";
      card.setAttribute("aria-busy", "true");
      card.querySelector(".card-state").textContent = "Saving…";
    });
    updateSelection();
    if (decision !== "relabel") {
      // Move on at once; the answer updates the card when it comes.
      var next = pendingAfter(list[list.length - 1]);
      if (next) focusCard(next);
    }
    inFlight++;
    // One decision on the wire at a time, in the order they were made: a later decision on the same photo
    // (reject after approve) always lands last.
    queue = queue.then(function () {
      return fetch(form.getAttribute("action") || window.location.pathname, {
        method: "POST", body: body, credentials: "same-origin",
        headers: {"Accept": "application/json", "X-CSRFToken": csrf},
      });
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      if (!answer.ok) throw new Error(answer.data.error ? answer.data.error.message : "The server refused.");
      var failed = false;
      answer.data.results.forEach(function (result) {
        var card = document.getElementById("photo-" + result.id);
        if (!card) return;
        card.removeAttribute("aria-busy");
        if (result.ok) {
          card.dataset.state = result.status;
          card.dataset.label = result.label;
          card.querySelector(".card-label").textContent = result.label;
          card.querySelector(".card-state").textContent = result.status_display +
            (result.reason ? ": " + reasonText(result.reason) : "");
        } else {
          failed = true;
          card.dataset.state = before[result.id] || "pending";
          card.querySelector(".card-state").textContent = result.message;
        }
      });
      setWaiting(answer.data.waiting);
      say(answer.data.message + " " + answer.data.waiting + " waiting.", failed);
    }).catch(function (error) {
      list.forEach(function (card) {
        card.removeAttribute("aria-busy");
        card.dataset.state = before[card.dataset.photoId] || "pending";
        card.querySelector(".card-state").textContent = "Not saved";
      });
      say("Not saved (" + error.message + "): decide " + name(list) + " again.", true);
    }).then(function () {
      inFlight--;
      loadNextWhenDone();
    });
  }

  function reasonText(value) {
    var button = reasonButtons.filter(function (b) { return b.dataset.reason === value; })[0];
    return button ? button.textContent.replace(/^\s*\d\s*/, "").trim() : value;
  }

  function swapping() {
    return loading || !cards().some(function (card) { return card.dataset.state === "pending"; });
  }

  function loadNextWhenDone() {
    var open = cards().some(function (card) { return card.dataset.state === "pending" || card.dataset.state === "saving"; });
    if (open || inFlight || loading) return;
    loading = true;
    var done = statusBox.textContent;
    fetch(app.dataset.pageUrl, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("review-grid-wrap");
        if (!fresh) throw new Error("no grid in the page");
        document.getElementById("review-grid-wrap").replaceWith(document.importNode(fresh, true));
        var n = cards().length;
        setWaiting(Number(fresh.dataset.waiting));
        prepare();
        say(done + " " + (n ? n + " more " + photoWord(n) + " loaded." : "The queue is empty."));
        if (!n) document.getElementById("review-grid").focus();
      })
      .catch(function () { say(done + " The next photos could not be loaded: reload the page.", true); })
      .then(function () { loading = false; });
  }

  // --- prompts: the reason (r) and the new label (l)

  function openPrompt(prompt, list) {
    closePrompt(false);
    promptFor = list;
    prompt.hidden = false;
    prompt.querySelector(".prompt-target").textContent = name(list);
    if (prompt === labelPrompt) {
      labelSelect.value = list[0].dataset.label;
      labelSelect.focus();
    } else {
      reasonButtons[0].focus();
    }
  }
  function closePrompt(refocus) {
    var was = promptFor;
    reasonPrompt.hidden = labelPrompt.hidden = true;
    promptFor = null;
    if (refocus && was && lastCard) focusCard(lastCard);
  }
  function reject(reason) {
    var list = promptFor;
    closePrompt(false);
    if (lastCard) focusCard(lastCard);
    decide(list, "reject", {reason: reason});
  }
  function relabel() {
    var list = promptFor;
    closePrompt(true);
    decide(list, "relabel", {label: labelSelect.value});
  }
  reasonButtons.forEach(function (button) {
    button.addEventListener("click", function () { reject(button.dataset.reason); });
  });
  labelPrompt.querySelector(".prompt-go").addEventListener("click", relabel);
  app.querySelectorAll(".prompt-cancel").forEach(function (button) {
    button.addEventListener("click", function () { closePrompt(true); });
  });

  // --- keys

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (promptFor) {
      if (event.key === "Escape") { event.preventDefault(); closePrompt(true); say("Cancelled."); }
      else if (!reasonPrompt.hidden && /^[1-9]$/.test(event.key) && reasonButtons[Number(event.key) - 1]) {
        event.preventDefault();
        reject(reasonButtons[Number(event.key) - 1].dataset.reason);
      } else if (!labelPrompt.hidden && event.key === "Enter" && event.target === labelSelect) {
        event.preventDefault();
        relabel();
      }
      return;
    }
    var card = event.target.closest && event.target.closest(".review-card");
    if (!card || event.target.matches("select, textarea, input[type=text]")) return;
    var key = event.key;
    if (/^Arrow|^Home$|^End$/.test(key)) { event.preventDefault(); move(card, key); return; }
    if (swapping() && /^[arlx ]$/.test(key)) {
      // Every photo of this batch is decided and the next one is on its way: a key pressed now was meant for
      // a photo of the next batch, never for the decided photo that still has focus.
      event.preventDefault();
      say("Loading the next photos: that key was not applied to photo #" + card.dataset.photoId + ".");
      return;
    }
    if (event.target !== card && (key === " " || key === "Enter")) return;  // a button's own keys
    lastCard = card;
    if (key === "a") { event.preventDefault(); decide(targets(card), "approve"); }
    else if (key === "r") { event.preventDefault(); openPrompt(reasonPrompt, targets(card)); }
    else if (key === "l") { event.preventDefault(); openPrompt(labelPrompt, targets(card)); }
    else if (key === "x" || key === " ") {
      event.preventDefault();
      box(card).checked = !box(card).checked;
      updateSelection();
      say((box(card).checked ? "Selected" : "Unselected") + " photo #" + card.dataset.photoId + "; " +
          selectionBox.textContent.toLowerCase() + " selected.");
    } else if (key === "Escape" && selected().length) {
      selected().forEach(function (other) { box(other).checked = false; });
      updateSelection();
      say("Selection cleared.");
    }
  });

  // --- mouse and the buttons: the same decisions

  app.addEventListener("click", function (event) {
    var card = event.target.closest(".review-card");
    if (card && !event.target.closest("a, button, input, label")) focusCard(card);
  });
  app.addEventListener("change", function (event) {
    if (event.target.name === "ids") updateSelection();
  });
  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button) return;
    event.preventDefault();
    if (button.name === "one") {
      var parts = button.value.split(":"), card = document.getElementById("photo-" + parts[1]);
      lastCard = card;
      if (parts[0] === "approve") decide([card], "approve");
      else openPrompt(parts[0] === "reject" ? reasonPrompt : labelPrompt, [card]);
      return;
    }
    var list = selected();
    if (!list.length) { say("Select photos first (x or Space on a photo, or tick its box).", true); return; }
    var extra = {};
    if (button.value === "reject") extra.reason = document.getElementById("toolbar-reason").value;
    if (button.value === "relabel") extra.label = document.getElementById("toolbar-label").value;
    decide(list, button.value, extra);
  });

  prepare();
})();
