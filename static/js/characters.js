// Character pages: the backstory's character counter, and the delete confirmation's
// "type the name" guard. No inline scripts (strict CSP); every page works without this file
// (the server checks the name again and validates the length).
(function () {
  "use strict";

  function formatNumber(value) {
    return value.toLocaleString("en-US");
  }

  function updateCounter(textarea, counter) {
    var max = parseInt(textarea.getAttribute("data-count-max"), 10);
    var length = textarea.value.replace(/\r\n/g, "\n").length;
    counter.textContent = formatNumber(length) + " / " + formatNumber(max) + " characters";
    var over = length > max;
    counter.classList.toggle("is-over", over);
    if (over) {
      counter.textContent += " (" + formatNumber(length - max) + " too many)";
    }
  }

  function enhanceCounters(scope) {
    scope.querySelectorAll("[data-counter-for]").forEach(function (counter) {
      var textarea = document.getElementById(counter.getAttribute("data-counter-for"));
      if (!textarea || !textarea.hasAttribute("data-count-max") || textarea._counter) {
        return;
      }
      textarea._counter = counter;
      updateCounter(textarea, counter);
      textarea.addEventListener("input", function () {
        updateCounter(textarea, counter);
      });
    });
  }

  // Delete: the submit button stays disabled until the typed text equals the name.
  function syncConfirm(input) {
    var form = input.form;
    var button = form ? form.querySelector("[data-confirm-submit]") : null;
    if (button) {
      button.disabled = input.value.trim() !== input.getAttribute("data-confirm-name");
    }
  }

  function enhanceConfirms(scope) {
    scope.querySelectorAll("input[data-confirm-name]").forEach(function (input) {
      syncConfirm(input);
    });
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && target.hasAttribute("data-confirm-name")) {
      syncConfirm(target);
    }
  });

  function enhance(scope) {
    enhanceCounters(scope);
    enhanceConfirms(scope);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
  });

  document.addEventListener("htmx:load", function (event) {
    var element = event.detail && event.detail.elt;
    if (element instanceof Element) {
      enhance(element.parentElement || element);
    }
  });
})();

// Filter forms marked data-drop-empty send (and push into the address bar) only the filters
// in use: ?q=unit rather than ?q=unit&voice=&language=&key=.
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail || {};
    var source = detail.elt;
    var form = source instanceof Element ? source.closest("form[data-drop-empty]") : null;
    if (!form || (detail.verb || "").toLowerCase() !== "get" || !detail.parameters) {
      return;
    }
    var parameters = detail.parameters;
    var names = typeof parameters.keys === "function" ? Array.from(parameters.keys()) : Object.keys(parameters);
    names.forEach(function (name) {
      var value = typeof parameters.get === "function" ? parameters.get(name) : parameters[name];
      if (value === "" || value === null) {
        if (typeof parameters.delete === "function") {
          parameters.delete(name);
        } else {
          delete parameters[name];
        }
      }
    });
  });
})();
