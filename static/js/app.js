// Convai Admin behaviour. No inline scripts anywhere (strict CSP): everything lives here, and
// every page still works without it (confirmations are plain pages, forms plain forms).
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("js");

  // Requests in flight, for the progress bar (.htmx-busy on <html>).
  var inFlight = 0;

  function setBusy(delta) {
    inFlight = delta === 0 ? 0 : Math.max(0, inFlight + delta);
    root.classList.toggle("htmx-busy", inFlight > 0);
  }

  function modal() {
    return document.getElementById("modal");
  }

  function modalContent() {
    return document.getElementById("modal-content");
  }

  function openModal() {
    var dialog = modal();
    if (dialog && !dialog.open && typeof dialog.showModal === "function") {
      dialog.showModal();
    }
  }

  function closeModal() {
    var dialog = modal();
    if (dialog && dialog.open) {
      dialog.close();
    }
  }

  // Show a message in the flash area, e.g. when an htmx request fails.
  function flash(level, text) {
    var box = document.getElementById("messages");
    if (!box) {
      return;
    }
    var alert = document.createElement("div");
    alert.className = "alert alert-" + level;
    alert.setAttribute("role", level === "error" ? "alert" : "status");
    var body = document.createElement("div");
    body.className = "alert-body";
    body.textContent = text;
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "alert-dismiss";
    dismiss.setAttribute("data-dismiss-alert", "");
    dismiss.setAttribute("aria-label", "Dismiss message");
    dismiss.textContent = "\u00d7";
    alert.appendChild(body);
    alert.appendChild(dismiss);
    box.appendChild(alert);
  }

  function isInsideModal(element) {
    var dialog = modal();
    return Boolean(dialog && element && dialog.contains(element));
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var closer = target.closest("[data-close-dialog]");
    if (closer) {
      event.preventDefault();
      var dialog = closer.closest("dialog") || modal();
      if (dialog && dialog.open) {
        dialog.close();
      }
      return;
    }
    var dismiss = target.closest("[data-dismiss-alert]");
    if (dismiss) {
      var alert = dismiss.closest(".alert");
      if (alert) {
        alert.remove();
      }
      var main = document.getElementById("main");
      if (main) {
        main.focus({ preventScroll: true });
      }
      return;
    }
    // A click on the backdrop (the dialog element itself, outside its content) closes it.
    var dialogElement = modal();
    if (target === dialogElement && dialogElement.open) {
      var box = dialogElement.getBoundingClientRect();
      var inside =
        event.clientX >= box.left &&
        event.clientX <= box.right &&
        event.clientY >= box.top &&
        event.clientY <= box.bottom;
      if (!inside) {
        dialogElement.close();
      }
    }
  });

  // Close any open <details> menu when clicking elsewhere or pressing Escape.
  function closeMenus(except) {
    document.querySelectorAll("details[open].team-switcher, details[open].nav-user, details[open].nav-mobile")
      .forEach(function (details) {
        if (details !== except) {
          details.removeAttribute("open");
        }
      });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    closeMenus(target.closest("details"));
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var openMenu = document.querySelector(
        "details[open].team-switcher, details[open].nav-user, details[open].nav-mobile"
      );
      if (openMenu) {
        closeMenus(null);
        var summary = openMenu.querySelector("summary");
        if (summary) {
          summary.focus();
        }
      }
    }
  });

  // The dialog: empty it when it closes (Escape, close button, submit), so stale content from
  // one confirmation never shows in the next, and give focus back to where it came from.
  var returnFocusTo = null;

  document.addEventListener("DOMContentLoaded", function () {
    var dialog = modal();
    if (!dialog) {
      return;
    }
    dialog.addEventListener("close", function () {
      var content = modalContent();
      if (content) {
        content.innerHTML = "";
      }
      if (returnFocusTo && document.contains(returnFocusTo)) {
        returnFocusTo.focus();
      }
      returnFocusTo = null;
    });
  });

  // htmx events bubble to document, so listening here works before htmx has loaded.
  document.addEventListener("htmx:beforeRequest", function (event) {
    setBusy(1);
    var content = modalContent();
    if (content && event.detail && event.detail.target === content) {
      returnFocusTo = document.activeElement;
    }
  });

  // A redirected htmx request (an expired session sent to sign-in) needs nothing here: the
  // server answers it with HX-Redirect (HtmxRedirectMiddleware) and htmx navigates.
  document.addEventListener("htmx:afterRequest", function (event) {
    setBusy(-1);
    var detail = event.detail || {};
    // A successful hx-post from inside the dialog (the character dialogs) closes it, unless
    // the answer was swapped back into the dialog (e.g. the form again, with errors).
    if (detail.successful && isInsideModal(detail.elt) && !isInsideModal(detail.target)) {
      closeModal();
    }
  });

  // A confirmation loaded into the dialog opens it; an empty answer swapped into it (an
  // action done, nothing left to show) closes it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var content = modalContent();
    if (content && event.detail && event.detail.target === content) {
      if (content.textContent.trim() === "" && !content.querySelector("form, button, a")) {
        closeModal();
      } else {
        openModal();
      }
    }
    // After the dialog opened (showModal focuses its first field): errors come first.
    if (event.detail && event.detail.target instanceof Element) {
      focusErrorSummary(event.detail.target);
    }
  });

  // A plain form inside the dialog navigates away: close the dialog so the page behind is
  // what the user sees while the browser loads the answer. htmx forms stay (see above).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !isInsideModal(form) || event.defaultPrevented) {
      return;
    }
    if (form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) {
      return;
    }
    closeModal();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var text;
    if (status === 403) {
      text = "You do not have permission to do that. Ask an admin of this team if you need it.";
    } else if (status === 404) {
      text = "That item no longer exists. Reload the page to see the current state.";
    } else if (status === 429) {
      text = "Too many requests. Wait a moment and try again.";
    } else {
      text = "Something went wrong on the server (" + status + "). Reload the page and try again.";
    }
    flash("error", text);
  });

  // Copy buttons: <button data-copy-target="#id" hidden> copies the value (or text) of #id.
  // They are rendered hidden, so without script nobody sees a button that does nothing; the
  // nearest [data-copy-status] (an aria-live element) says what happened.
  var COPY_FEEDBACK_MS = 2500;

  function copyStatusFor(button) {
    for (var node = button.parentElement; node; node = node.parentElement) {
      var status = node.querySelector("[data-copy-status]");
      if (status) {
        return status;
      }
    }
    return null;
  }

  function copySource(button) {
    var selector = button.getAttribute("data-copy-target");
    try {
      return selector ? document.querySelector(selector) : null;
    } catch (error) {
      return null; // not a valid selector
    }
  }

  function selectAll(element) {
    if (typeof element.select === "function") {
      element.focus();
      element.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    if (selection) {
      selection.removeAllRanges();
      selection.addRange(range);
    }
  }

  function showCopyResult(button, copied) {
    var status = copyStatusFor(button);
    if (copied) {
      if (!button.hasAttribute("data-copy-label")) {
        button.setAttribute("data-copy-label", button.textContent);
      }
      button.textContent = "Copied";
      button.classList.add("is-copied");
      if (status) {
        status.textContent = "Copied to the clipboard.";
      }
      window.clearTimeout(button._copyTimer);
      button._copyTimer = window.setTimeout(function () {
        button.textContent = button.getAttribute("data-copy-label");
        button.classList.remove("is-copied");
        if (status) {
          status.textContent = "";
        }
      }, COPY_FEEDBACK_MS);
    } else if (status) {
      status.textContent = "The text is selected: press Ctrl+C (\u2318C on a Mac) to copy it.";
    }
  }

  // Without the Clipboard API (older browsers, or a page served over plain http), try the old
  // copy command on the selected text; if even that fails, leave the text selected.
  function copyBySelection(source) {
    selectAll(source);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copyFrom(button) {
    var source = copySource(button);
    if (!source) {
      return;
    }
    var text = "value" in source ? source.value : source.textContent;
    if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
      navigator.clipboard.writeText(text).then(
        function () {
          showCopyResult(button, true);
        },
        function () {
          showCopyResult(button, copyBySelection(source));
        }
      );
    } else {
      showCopyResult(button, copyBySelection(source));
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var button = target instanceof Element ? target.closest("[data-copy-target]") : null;
    if (button) {
      event.preventDefault();
      copyFrom(button);
    }
  });

  // Read-only fields meant to be copied select their whole text on focus. The mouseup that
  // follows a focusing click would collapse that selection again, so it is swallowed once.
  var justSelected = null;

  document.addEventListener("focusin", function (event) {
    var field = event.target;
    if (field instanceof HTMLInputElement && field.hasAttribute("data-select-on-focus")) {
      field.select();
      justSelected = field;
    }
  });

  document.addEventListener("mouseup", function (event) {
    if (justSelected && event.target === justSelected) {
      event.preventDefault();
    }
    justSelected = null;
  });

  // A form answered with errors: focus its error summary (includes/form_errors.html), so the
  // problem is announced and its links lead to the fields.
  function focusErrorSummary(scope) {
    var summary =
      scope instanceof Element && scope.matches("[data-error-summary]")
        ? scope
        : scope.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
    }
  }

  // "Select all" / "Select none" for a group of checkboxes: buttons with
  // data-select-all="<group>" or data-select-none="<group>" (hidden until this script shows
  // them: without it, the checkboxes work one by one) set every enabled checkbox with
  // data-select-group="<group>", and say so with a change event, as a click would.
  function setGroup(group, checked) {
    document
      .querySelectorAll('input[type="checkbox"][data-select-group]')
      .forEach(function (box) {
        if (box.getAttribute("data-select-group") !== group || box.disabled) {
          return;
        }
        // An inverted box says "leave this one out": selecting all clears it.
        var wanted = box.hasAttribute("data-select-inverted") ? !checked : checked;
        if (box.checked !== wanted) {
          box.checked = wanted;
          box.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var button = target.closest("[data-select-all], [data-select-none]");
    if (!button) {
      return;
    }
    event.preventDefault();
    if (button.hasAttribute("data-select-all")) {
      setGroup(button.getAttribute("data-select-all"), true);
    } else {
      setGroup(button.getAttribute("data-select-none"), false);
    }
  });

  function enhance(scope) {
    scope
      .querySelectorAll("[data-copy-target][hidden], [data-select-all][hidden], [data-select-none][hidden]")
      .forEach(function (button) {
        button.hidden = false;
      });
    var focused = document.activeElement;
    if (focused instanceof HTMLInputElement && focused.hasAttribute("data-select-on-focus")) {
      focused.select(); // autofocus may have happened before this script ran
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    focusErrorSummary(document);
  });

  // Going to the URL's #fragment (a form that posts to "…#add-key") moves the focus to the
  // page once it has loaded: take it back, unless the user has put it somewhere already.
  window.addEventListener("load", function () {
    if (!document.activeElement || document.activeElement === document.body) {
      focusErrorSummary(document);
    }
  });

  document.addEventListener("htmx:load", function (event) {
    var element = event.detail && event.detail.elt;
    if (element instanceof Element) {
      enhance(element);
    }
  });

  document.addEventListener("htmx:sendError", function () {
    flash("error", "Could not reach the server. Check your connection and try again.");
  });

  document.addEventListener("htmx:timeout", function () {
    setBusy(0);
    flash("error", "The server took too long to answer. Try again in a moment.");
  });
})();
