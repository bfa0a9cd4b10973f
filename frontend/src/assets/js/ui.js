// Small DOM helpers shared by the pages: element building, status messages, forms with field errors,
// and the header of the pages that need a session.
import { forgetSession, isAdmin, keepSessionFresh, publicCall, refreshSession } from './api.js';

/** el('a', {href: '/', class: 'card'}, 'text', childNode): text children are never parsed as HTML. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** Shows `message` in a live region; kind: 'error' | 'success' | '' (neutral). */
export function setStatus(element, message, kind = '') {
  element.textContent = message;
  element.dataset.kind = kind;
}

export function params() {
  return new URLSearchParams(location.search);
}

function clearFieldErrors(form) {
  for (const error of form.querySelectorAll('.field-error')) error.remove();
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const hint = input.dataset.hintId;
    if (hint) input.setAttribute('aria-describedby', hint);
    else input.removeAttribute('aria-describedby');
  }
}

/** Puts server field errors under their inputs; returns the messages no input claimed. */
function showFieldErrors(form, body) {
  const unclaimed = [];
  let first = null;
  for (const [name, messages] of Object.entries(body)) {
    const input = form.elements.namedItem(name);
    const text = [messages].flat().join(' ');
    if (!input?.id) {
      unclaimed.push(text);
      continue;
    }
    const error = el('p', { class: 'field-error', id: `${input.id}-error` }, text);
    (input.closest('.field') ?? input.parentElement).append(error);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', [input.dataset.hintId, error.id].filter(Boolean).join(' '));
    first ??= input;
  }
  first?.focus();
  return { unclaimed, claimed: first !== null };
}

function browserValidationErrors(form) {
  const invalid = [...form.elements].filter((input) => input.name && !input.validity.valid);
  return Object.fromEntries(invalid.map((input) => [input.name, [input.validationMessage]]));
}

/**
 * Runs `submit(values)` on submit with the button disabled meanwhile. Errors from the API appear under
 * their fields, the rest in the form's status region; a returned string is shown as success.
 */
export function bindForm(form, submit) {
  const status = form.querySelector('.status');
  const button = form.querySelector('[type="submit"]');
  for (const input of form.querySelectorAll('[aria-describedby]')) {
    input.dataset.hintId = input.getAttribute('aria-describedby');
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    setStatus(status, '');
    if (!form.checkValidity()) {
      showFieldErrors(form, browserValidationErrors(form));
      setStatus(status, 'Please correct the marked fields.', 'error');
      return;
    }
    button.disabled = true;
    try {
      const values = Object.fromEntries(new FormData(form));
      const message = await submit(values);
      if (message) setStatus(status, message, 'success');
    } catch (error) {
      const { unclaimed, claimed } = showFieldErrors(form, error.body ?? {});
      const text = unclaimed.join(' ') || (claimed ? 'Please correct the marked fields.' : error.message);
      setStatus(status, text, 'error');
    } finally {
      button.disabled = false;
    }
  });
}

/** Wires every `data-action="logout"` button: revoke the session, then show the logged-out page. */
export function bindLogoutButtons() {
  for (const button of document.querySelectorAll('[data-action="logout"]')) {
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await publicCall('POST', 'logout/', {});
      } catch (error) {
        // An expired access token must not keep the refresh token alive: refresh, then revoke it.
        if (error.status === 401 && await refreshSession()) await publicCall('POST', 'logout/', {}).catch(() => {});
      }
      forgetSession();
      location.assign('/pages/auth/logout.html');
    });
  }
}

/** For pages behind login: keeps the access token fresh and wires the header (the Admin link for admins). */
export function initAppPage() {
  keepSessionFresh();
  bindLogoutButtons();
  for (const link of document.querySelectorAll('[data-admin-link]')) link.hidden = !isAdmin();
}

export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  const minutes = Math.floor(total / 60);
  return `${minutes}:${String(total % 60).padStart(2, '0')}`;
}
