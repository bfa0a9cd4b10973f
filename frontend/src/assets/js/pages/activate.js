import { publicCall } from '../api.js';
import { params, setStatus } from '../ui.js';

const title = document.getElementById('activate-title');
const status = document.getElementById('activate-status');
const uid = params().get('uid');
const token = params().get('token');

async function activate() {
  if (!uid || !token) throw new Error('This activation link is incomplete. Copy the whole link from the mail.');
  const path = `activate/${encodeURIComponent(uid)}/${encodeURIComponent(token)}/`;
  return publicCall('GET', path);
}

try {
  const answer = await activate();
  title.textContent = 'Your account is active';
  setStatus(status, answer.message || 'Account successfully activated.', 'success');
  document.getElementById('login-link').hidden = false;
} catch (error) {
  title.textContent = 'Activation failed';
  setStatus(status, error.message, 'error');
  document.getElementById('resend-link').hidden = false;
}
title.focus();
