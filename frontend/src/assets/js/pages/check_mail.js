import { publicCall } from '../api.js';
import { bindForm } from '../ui.js';

const email = sessionStorage.getItem('videoflix.signupEmail');
if (email) {
  document.getElementById('email').value = email;
  document.getElementById('sent-to').textContent =
    `We sent an activation link to ${email}. Open it to activate your account, then log in.`;
}

bindForm(document.getElementById('resend-form'), async (values) => {
  const answer = await publicCall('POST', 'activation/resend/', values);
  return answer.detail || 'If the address belongs to an account waiting for activation, a new link is on its way.';
});
