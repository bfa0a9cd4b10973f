import { publicCall } from '../api.js';
import { bindForm } from '../ui.js';

bindForm(document.getElementById('forgot-form'), async (values) => {
  const answer = await publicCall('POST', 'password_reset/', values);
  return answer.detail || 'An email has been sent to reset your password.';
});
