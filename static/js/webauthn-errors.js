// allauth's webauthn.js dispatches "allauth.error" when a passkey ceremony fails or is cancelled
// (and only logs it otherwise). Show it where the person is looking: the element marked
// data-webauthn-error on the page. No inline script: this file is served as a static file.
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
})()
