import { publicCall } from '../api.js';
import { bindForm, params } from '../ui.js';

const form = document.getElementById('confirm-form');
const uid = params().get('uid') ?? '';
const token = params().get('token') ?? '';

bindForm(form, async (values) => {
  const path = `password_confirm/${encodeURIComponent(uid)}/${encodeURIComponent(token)}/`;
  const answer = await publicCall('POST', path, values);
  form.querySelector('[type="submit"]').hidden = true;
  document.getElementById('login-link').hidden = false;
  return `${answer.detail || 'Your password has been reset.'} You can log in with it now.`;
});
