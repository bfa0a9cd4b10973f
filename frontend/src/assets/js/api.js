// Every HTTP call to the Videoflix API goes through here. The app is served by the gateway on the
// API's own origin, so the HttpOnly token cookies travel by themselves; state-changing calls add the
// readable csrftoken cookie as X-CSRFToken (double submit).

const API = '/api/';
const LOGIN_PAGE = '/pages/auth/login.html';
// Access tokens live 30 minutes; refresh well before that, like the contract's reference frontend.
const REFRESH_EVERY_MS = 20 * 60 * 1000;
const LAST_REFRESH_KEY = 'videoflix.lastRefresh';

const STATUS_MESSAGES = {
  0: 'The server cannot be reached. Check your connection and try again.',
  413: 'The file is larger than this server accepts.',
  429: 'Too many attempts. Please wait a minute and try again.',
  502: 'Videoflix is temporarily unavailable. Please try again in a moment.',
  503: 'Videoflix is temporarily unavailable. Please try again in a moment.',
  504: 'The server took too long to answer. Please try again.',
};

export class ApiError extends Error {
  constructor(status, body) {
    super(errorMessage(body, status));
    this.status = status;
    this.body = body;
  }
}

/** One readable sentence out of `{"detail": ...}`, `{"field": ["msg"]}` or anything else. */
export function errorMessage(body, status) {
  if (body && typeof body === 'object') {
    if (typeof body.detail === 'string') return body.detail;
    const messages = Object.values(body).flat().filter((value) => typeof value === 'string');
    if (messages.length) return messages.join(' ');
  }
  return STATUS_MESSAGES[status] ?? `Something went wrong (HTTP ${status}). Please try again.`;
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : '';
}

export function hasSession() {
  return csrfToken() !== '';
}

function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && csrfToken()) headers['X-CSRFToken'] = csrfToken();
  return fetch(API + path, init).catch(() => ({ ok: false, status: 0, text: async () => '' }));
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

async function result(response) {
  const body = await readBody(response);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** A call that needs no session (register, login, activation...): a 401 here is an answer. */
export async function publicCall(method, path, body) {
  return result(await send(method, path, body));
}

let refreshing = null;

/** POST token/refresh/ (one at a time); resolves to true when a fresh access cookie was set. */
export function refreshSession() {
  refreshing ??= send('POST', 'token/refresh/', {})
    .then((response) => {
      if (response.ok) markRefreshed();
      return response.ok;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

export function markRefreshed() {
  localStorage.setItem(LAST_REFRESH_KEY, String(Date.now()));
}

export function forgetSession() {
  localStorage.removeItem(LAST_REFRESH_KEY);
}

/**
 * Only a page of this site is a safe place to come back to after logging in: `next` is resolved the way
 * the browser will resolve it (tabs and newlines dropped, backslashes as slashes, dot segments...) and
 * must stay on this origin; anything else (`//evil.example`, `/\t/evil.example`, `javascript:`...) goes
 * home. The answer is absolute, so even a path like `//evil.example` left by dot segments stays here.
 */
export function safeNext(value) {
  if (typeof value !== 'string' || value === '') return '/';
  let target;
  try {
    target = new URL(value, location.origin);
  } catch {
    return '/';
  }
  return target.origin === location.origin ? target.href : '/';
}

export function goToLogin() {
  const here = location.pathname + location.search + location.hash;
  location.assign(`${LOGIN_PAGE}?next=${encodeURIComponent(here)}`);
}

const SESSION_ENDED = { detail: 'Your session has ended. Taking you to the login page…' };

/** A call that needs the session: on 401 refresh once and retry; a second 401 goes to login and back. */
export async function call(method, path, body) {
  let response = await send(method, path, body);
  if (response.status === 401 && await refreshSession()) response = await send(method, path, body);
  if (response.status === 401) {
    goToLogin();
    throw new ApiError(401, SESSION_ENDED);
  }
  return result(response);
}

/** Refreshes the access token every 20 minutes, counted from the last refresh in any tab. */
export function keepSessionFresh() {
  const schedule = () => {
    const last = Number(localStorage.getItem(LAST_REFRESH_KEY)) || 0;
    setTimeout(tick, Math.max(0, last + REFRESH_EVERY_MS - Date.now()));
  };
  const tick = async () => {
    const last = Number(localStorage.getItem(LAST_REFRESH_KEY)) || 0;
    if (Date.now() - last >= REFRESH_EVERY_MS - 1000 && !(await refreshSession())) {
      goToLogin();
      return;
    }
    schedule();
  };
  schedule();
}

function postForm(path, form, onProgress) {
  const request = new XMLHttpRequest();
  const done = new Promise((resolve) => {
    request.open('POST', API + path);
    request.setRequestHeader('Accept', 'application/json');
    if (csrfToken()) request.setRequestHeader('X-CSRFToken', csrfToken());
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener('loadend', () => resolve(request));
    request.send(form);
  });
  return { request, done };
}

/**
 * Uploads multipart `form` with progress callbacks (XMLHttpRequest: fetch has no upload progress).
 * Returns {abort, result}; result resolves to the created video or rejects with an ApiError.
 */
export function uploadForm(path, form, onProgress) {
  let current = postForm(path, form, onProgress);
  let aborted = false;
  const finish = async () => {
    let request = await current.done;
    if (request.status === 401 && !aborted && await refreshSession()) {
      current = postForm(path, form, onProgress);
      request = await current.done;
    }
    if (aborted) throw new ApiError(0, { detail: 'Upload cancelled.' });
    let body = {};
    try {
      body = request.responseText ? JSON.parse(request.responseText) : {};
    } catch { /* a proxy's non-JSON error page: fall back to the status */ }
    if (request.status === 401) {
      goToLogin();
      throw new ApiError(401, SESSION_ENDED);
    }
    if (request.status < 200 || request.status >= 300) throw new ApiError(request.status, body);
    return body;
  };
  return {
    abort() {
      aborted = true;
      current.request.abort();
    },
    result: finish(),
  };
}
