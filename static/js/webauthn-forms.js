// Wires allauth's WebAuthn forms (static/mfa/js/webauthn.js, window.allauth.webauthn.forms)
// to the elements marked data-webauthn-form="addForm|loginForm|authenticateForm", with the
// element IDs it needs in data-webauthn-ids (JSON). This replaces allauth's own
// <script type="application/json" data-allauth-onload> blocks and onload.js, so no template
// holds a <script> without src (the strict CSP's template scan), and a failed or cancelled
// ceremony is shown on the page, in the element marked data-webauthn-error.
(function () {
  'use strict'

  document.addEventListener('allauth.error', function (event) {
    var target = document.querySelector('[data-webauthn-error]')
    if (!target) return
    event.preventDefault()
    var name = event.detail && event.detail.exception && event.detail.exception.name
    target.textContent = name === 'NotAllowedError'
      ? 'The passkey request was cancelled or timed out. Try again, or use another way.'
      : 'Your browser could not use a passkey here. Try again, or use another way.'
    target.hidden = false
  })

  document.addEventListener('DOMContentLoaded', function () {
    var forms = window.allauth && window.allauth.webauthn && window.allauth.webauthn.forms
    if (!forms) return
    document.querySelectorAll('[data-webauthn-form]').forEach(function (element) {
      var wire = forms[element.dataset.webauthnForm]
      if (typeof wire !== 'function') return
      wire({ ids: JSON.parse(element.dataset.webauthnIds) })
    })
  })
})()
